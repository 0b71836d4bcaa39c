"""Adapters by name: `open_dataset("nih", root)` reads a dataset download folder as its release lays it out.

One entry per layout, so `medcf data check ROOT --adapter NAME` and `train --set data.adapter=NAME` read the
same folder the same way. `table` names the dataset's table where a release ships several (CheXpert's
train.csv / valid.csv, NIH's full list or its sample) or where a layout has no fixed name (folder, brain);
None takes the release's own file, found under root.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medcf.data.adapters.adni import adni
from medcf.data.adapters.brain import brain_mri
from medcf.data.adapters.chexpert import chexpert
from medcf.data.adapters.covid import covid_radiography
from medcf.data.adapters.folder import image_folder
from medcf.data.adapters.mimic import mimic_cxr
from medcf.data.adapters.nih import nih_chestxray14
from medcf.data.adapters.oasis import oasis1, oasis2
from medcf.data.adapters.oasis3 import oasis3
from medcf.data.cohort import Cohort

Opener = Callable[[Path, Path | None, str], Cohort]  # (root, table or None, modality) → Cohort


@dataclass(frozen=True)
class Adapter:
    name: str
    reads: str  # the dataset and its layout, for --help and the report
    tables: tuple[str, ...]  # the release's table names under root, the first present is used; () = none
    open: Opener


def _folder(root: Path, table: Path | None, modality: str) -> Cohort:
    return image_folder(root, table or "metadata.csv", modality=modality)


def _brain(root: Path, table: Path | None, modality: str) -> Cohort:
    return brain_mri(root, table or root / "metadata.csv")


ADAPTERS = {
    adapter.name: adapter
    for adapter in (
        Adapter("folder", "images + metadata.csv (id, patient_id, path, clinical columns); what `medcf synth` writes",
                ("metadata.csv",), _folder),
        Adapter("chexpert", "CheXpert / CheXpert-small (Stanford or Kaggle copy): train.csv or valid.csv",
                ("train.csv", "valid.csv"), lambda root, table, _: chexpert(table)),
        Adapter("mimic-cxr", "MIMIC-CXR-JPG 2.0.0 (PhysioNet): the metadata, chexpert and split tables + files/",
                (), lambda root, table, _: mimic_cxr(root)),
        Adapter("nih", "NIH ChestX-ray14: Data_Entry_2017(_v2020).csv or sample_labels.csv + images*/",
                ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv", "sample_labels.csv"),
                lambda root, table, _: nih_chestxray14(table, images=root)),
        Adapter("covid", "COVID-19 Radiography Database: class folders with images/ and masks/",
                (), lambda root, table, _: covid_radiography(root)),
        Adapter("oasis1", "OASIS-1 discs (T88_111 Analyze volumes) + oasis_cross-sectional.csv", (),
                lambda root, table, _: oasis1(root, table=table)),
        Adapter("oasis2", "OASIS-2 OAS2_RAW_PART1/2 (mpr-1 Analyze volumes) + oasis_longitudinal.csv", (),
                lambda root, table, _: oasis2(root, table=table)),
        Adapter("oasis3", "OASIS-3 oasis-scripts downloads (plain or BIDS T1w) + demographics and CDR tables", (),
                lambda root, table, _: oasis3(root, demographics=table)),
        Adapter("adni", "ADNI IDA collection folders + its collection CSV (+ ADNIMERGE)", (),
                lambda root, table, _: adni(root, collection_csv=table)),
        Adapter("brain", "brain MRI volumes (NIfTI/Analyze) + a table with a subject_id column", ("metadata.csv",),
                _brain),
    )
}  # fmt: skip


def open_dataset(name: str, root: str | Path, *, table: str | Path | None = None, modality: str = "") -> Cohort:
    """The Cohort of the dataset at `root` read by adapter `name` (the keys of ADAPTERS).

    `table` relative paths are taken under root. `modality` is used by the generic folder layout only: the
    other layouts know theirs.
    """
    if name not in ADAPTERS:
        raise ValueError(f"adapter '{name}' unknown; use one of {', '.join(ADAPTERS)}")
    adapter, root = ADAPTERS[name], Path(root).absolute()  # tables found under root are joined to it again
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found; pass the folder the {name} download unpacked to")
    return adapter.open(root, _table(adapter, root, table), modality or "chest X-ray")


def _table(adapter: Adapter, root: Path, table: str | Path | None) -> Path | None:
    """The table to read: `table` under root, else the first of the release's tables present."""
    if table is not None and str(table):
        return root / table
    present = [root / name for name in adapter.tables if (root / name).is_file()]
    if adapter.tables and not present:
        names = " or ".join(adapter.tables)
        raise FileNotFoundError(f"{root}: no {names} found; point at the {adapter.name} folder or pass its table")
    return present[0] if present else None
