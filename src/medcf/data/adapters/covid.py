"""COVID-19 Radiography Database (Chowdhury et al., IEEE Access 2020; Rahman et al., Comput. Biol. Med. 2021).

    root/COVID/images/COVID-1.png            299×299 chest X-rays, one folder per class
    root/COVID/masks/COVID-1.png             256×256 lung masks with the same file names
    root/COVID.metadata.xlsx                 FILE NAME, FORMAT, SIZE, URL (optional; checked when present)
    ... likewise Lung_Opacity, Normal, Viral Pneumonia

The database has no patient identifiers, so each image is its own patient (patient_id = file stem);
patient-level splits cannot then rule out two images of one person. Masks are stored at 256×256 while
images are 299×299, so the cohort asks the dataset to resize masks to their image (nearest neighbour).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medcf.data.cohort import Cohort
from medcf.data.table import load_table

# Class folder → finding values; keys absent from a class are "not mentioned" (None). The classes are
# exclusive labels, but the Lung_Opacity class means *non-COVID* lung opacity: COVID-19 and viral
# pneumonia images usually show opacities too, so their prompts must not say "no lung opacity".
CLASSES: dict[str, dict[str, int]] = {
    "COVID": {"covid19": 1, "viral_pneumonia": 0, "no_finding": 0},
    "Lung_Opacity": {"covid19": 0, "viral_pneumonia": 0, "lung_opacity": 1, "no_finding": 0},
    "Normal": {"covid19": 0, "viral_pneumonia": 0, "lung_opacity": 0, "no_finding": 1},
    "Viral Pneumonia": {"covid19": 0, "viral_pneumonia": 1, "no_finding": 0},
}
FINDINGS = ("covid19", "viral_pneumonia", "lung_opacity", "no_finding")
METADATA_COLUMNS = ["FILE NAME", "FORMAT", "SIZE", "URL"]
EXAMPLES_SHOWN = 5


def covid_radiography(root: str | Path) -> Cohort:
    """Read the COVID-19 Radiography Database folder into a Cohort with lung masks when present.

    Folders other than the four class folders (and files such as README.md.txt) are ignored; finding
    none of the class folders is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder not found; point root at COVID-19_Radiography_Dataset")
    present = [name for name in CLASSES if (root / name).is_dir()]
    if not present:
        raise ValueError(
            f"{root}: none of the class folders {list(CLASSES)} found; "
            "point root at the folder that holds them (COVID-19_Radiography_Dataset)"
        )
    with_masks = [name for name in present if (root / name / "masks").is_dir()]
    if with_masks and len(with_masks) < len(present):
        lacking = sorted(set(present) - set(with_masks))
        raise ValueError(f"{root}: class folder(s) {lacking} have no masks/ folder while others do; add them")
    tables = [_class_records(root, name, masks=bool(with_masks)) for name in present]
    records = pd.concat(tables, ignore_index=True)
    for key in FINDINGS:
        records[key] = records[key].astype("Int64")
    return Cohort(records, modality="chest X-ray", root=root, resize_masks=True)


def _class_records(root: Path, name: str, *, masks: bool) -> pd.DataFrame:
    """Rows of one class folder; every image needs a mask of the same name when masks are used."""
    folder = root / name / "images"
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{root / name}: no images/ folder; this adapter reads the layout <class>/images, <class>/masks "
            "of the 2021 and later releases"
        )
    images = sorted(path for path in folder.iterdir() if path.suffix.lower() == ".png")
    if not images:
        raise ValueError(f"{folder}: no PNG images; download the class folder again")
    if (metadata := root / f"{name}.metadata.xlsx").is_file():
        _check_metadata(metadata, images)
    rows = {
        "id": [path.stem for path in images],
        "patient_id": [path.stem for path in images],  # no patient ids in the database
        "path": [str(path) for path in images],
    }
    if masks:
        mask_paths = [root / name / "masks" / path.name for path in images]
        if missing := [str(path) for path in mask_paths if not path.is_file()]:
            raise FileNotFoundError(
                f"{root / name / 'masks'}: {len(missing)} mask(s) missing "
                f"(e.g. {', '.join(missing[:EXAMPLES_SHOWN])}); every image needs a mask with its file name"
            )
        rows["mask_path"] = [str(path) for path in mask_paths]
    findings = {key: [CLASSES[name].get(key)] * len(images) for key in FINDINGS}
    return pd.DataFrame(rows | findings)


def _check_metadata(path: Path, images: list[Path]) -> None:
    """The class's metadata sheet must list every image (case-insensitively: sheet and file names
    differ in case in some releases)."""
    table = load_table(path, required=METADATA_COLUMNS, id_column="FILE NAME")
    listed = {Path(str(name).strip()).stem.lower() for name in table["FILE NAME"]}
    if unlisted := [image.name for image in images if image.stem.lower() not in listed]:
        raise ValueError(
            f"{path}: {len(unlisted)} image(s) not listed under FILE NAME "
            f"(e.g. {', '.join(unlisted[:EXAMPLES_SHOWN])}); restore the original metadata file or the images"
        )
