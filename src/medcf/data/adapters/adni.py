"""ADNI (adni.loni.usc.edu) read as downloaded from the LONI IDA: an image collection's NIfTI folders and CSV,
merged with ADNIMERGE for the age and diagnosis at each visit when it is there.

Images: the IDA unpacks a collection as ADNI/<PTID>/<description>/<YYYY-MM-DD_HH_MM_SS.0>/<I-number>/ with files
ADNI_<PTID>_MR_<description>_..._S<series>_I<image>.nii (e.g. ADNI/002_S_0295/MP-RAGE/2006-04-18_08_20_30.0/
I13722/). An image is found by its Image Data ID: a NIfTI file named ..._I<id>.nii(.gz), or in a folder I<id>.
Collection CSV ("CSV" of an IDA image collection, named after the collection and date): Image Data ID, Subject,
Group, Sex, Age, Visit, Modality, Description, Type, Acq Date (M/D/YYYY), Format, Downloaded. Every CSV under
root with an Image Data ID column is read (several downloads add up); each image it lists must be under root.
ADNIMERGE (ADNIMERGE.csv / ADNIMERGE_<date>.csv, IDA Study Files → Study Info): one row per participant
visit, PTID, VISCODE, EXAMDATE (YYYY-MM-DD), AGE (the baseline age, repeated on every visit), DX_bl (the
baseline diagnosis), DX (the diagnosis at the visit), Years_bl (years since baseline), ...

A scan's visit is the participant's ADNIMERGE visit with the EXAMDATE nearest its Acq Date, within `max_days`
(180: ADNI visits are ≥ 6 months apart), as clinica's adni-to-bids does for images whose visit name it cannot
map. The collection's Visit is not matched to VISCODE: IDA visit names ("ADNI Screening", "ADNI2 Year 2 Visit")
change between phases, and ADNI1's screening MRI is ADNIMERGE's bl visit.
- age at the scan = AGE + Years_bl + (Acq Date − EXAMDATE) / 365.25 of the nearest visit, at any distance
  (each term is exact); for a participant missing from ADNIMERGE, the collection's Age;
- diagnosis = DX of the matched visit (a conversion "MCI to Dementia" gives the later state), DX_bl at a bl
  visit whose DX is blank, else unknown. Without ADNIMERGE it is the collection's Group: the research group at
  enrolment, the same on every visit (pass adnimerge= for converters).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from medcf.data.adapters.brain_fields import diagnosis_columns, parse_diagnosis
from medcf.data.adapters.release import SHOWN, under
from medcf.data.adapters.volumes import check_axis, slice_cohort
from medcf.data.cohort import Cohort
from medcf.data.table import load_table, parse_column, where
from medcf.prompts import is_missing
from medcf.prompts.fields import parse_age, parse_sex

COLLECTION = ["Image Data ID", "Subject", "Group", "Sex", "Age", "Acq Date"]
ADNIMERGE = "ADNIMERGE*.csv"
ADNIMERGE_COLUMNS = ["PTID", "VISCODE", "EXAMDATE", "AGE", "DX_bl", "DX", "Years_bl"]
IMAGE_FILE = re.compile(r"^.*_(I\d+)\.nii(?:\.gz)?$")
IMAGE_FOLDER = re.compile(r"^I\d+$")
DATE_FORMATS = ("%m/%d/%Y", "%Y-%m-%d")  # IDA writes M/D/YYYY, ADNIMERGE YYYY-MM-DD
DAYS_PER_YEAR = 365.25
MAX_DAYS = 180
Visit = tuple[date, str, str | None, str | None, float | None, float | None]  # date, VISCODE, DX, DX_bl, AGE, Years_bl


def adni(
    root: str | Path,
    *,
    collection_csv: str | Path | Sequence[str | Path] | None = None,
    adnimerge: str | Path | None = None,
    axis: str = "axial",
    slices: Sequence[int] | None = None,
    max_days: int = MAX_DAYS,
) -> Cohort:
    """ADNI images of IDA collections (NIfTI), one volume per Image Data ID, sliced along `axis`.

    Rows: id, patient_id (PTID), session_id (<PTID>_<Image Data ID>), path, slice_index, age (at the scan),
    sex, diagnosis (at the visit, module docstring) and the finding flags. `collection_csv` / `adnimerge`
    override the tables found under root; ADNIMERGE is optional.
    """
    root = Path(root)
    check_axis(axis)
    merge = _adnimerge(root, adnimerge)
    visits = None if merge is None else _visits(merge)
    images = _image_files(root)
    scans: dict[str, dict[str, object]] = {}
    for csv in _collection_tables(root, collection_csv):
        for scan in _scans(csv, root, images, groups=visits is None):
            scans.setdefault(str(scan["session_id"]), scan)  # an image listed by two collections is one scan
    diagnoses = []
    for scan in scans.values():
        acquired, group = scan.pop("acquired"), scan.pop("group")
        if visits is None:
            diagnoses.append(group)
            continue
        age, diagnosis = _at_visit(visits.get(scan["patient_id"], []), acquired, max_days)
        scan["age"] = scan["age"] if age is None else age
        diagnoses.append(diagnosis)
    volumes = pd.DataFrame(list(scans.values())).assign(**diagnosis_columns(diagnoses))
    return slice_cohort(volumes, root=root, axis=axis, slices=slices)


def _image_files(root: Path) -> dict[str, list[Path]]:
    """NIfTI files under root by Image Data ID, from the file name or the I<id> folder holding it."""
    found: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*.nii*")):
        if not path.name.endswith((".nii", ".nii.gz")) or not path.is_file():
            continue
        match = IMAGE_FILE.match(path.name)
        image = match.group(1) if match else path.parent.name if IMAGE_FOLDER.match(path.parent.name) else None
        if image:
            found.setdefault(image, []).append(path)
    return found


def _collection_tables(root: Path, override: str | Path | Sequence[str | Path] | None) -> list[Path]:
    """The collection CSVs: `override`, else every CSV under root whose header has an Image Data ID column."""
    if override is not None:
        paths = [override] if isinstance(override, str | Path) else list(override)
        return [under(root, path) for path in paths]
    tables = []
    for path in sorted(root.rglob("*.csv")):
        with open(path, encoding="utf-8-sig", errors="replace") as file:
            header = [name.strip().strip('"') for name in file.readline().split(",")]
        if "Image Data ID" in header:
            tables.append(path)
    if not tables:
        raise FileNotFoundError(
            f"{root}: no IDA collection CSV (columns Image Data ID, Subject, Group, ...) under the dataset folder; "
            "download the collection's CSV from the IDA into it, or pass collection_csv=<its path>"
        )
    return tables


def _adnimerge(root: Path, override: str | Path | None) -> Path | None:
    """`override`, else the ADNIMERGE table under root when there is one (it is optional); its data dictionary
    ADNIMERGE_DICT_<date>.csv, downloaded beside it, is not the table."""
    if override is not None:
        return under(root, override)
    found = sorted(path for path in root.rglob(ADNIMERGE) if "_DICT" not in path.name.upper())
    if len(found) > 1:
        shown = ", ".join(str(path) for path in found[:SHOWN])
        raise ValueError(f"{root}: several ADNIMERGE tables ({shown}); pass adnimerge=<the one to use>")
    return found[0] if found else None


def _scans(csv: Path, root: Path, images: dict[str, list[Path]], *, groups: bool) -> list[dict[str, object]]:
    """One record per listed image: ids, its volume, the collection's age and sex, its date, and (`groups`) the
    diagnosis of its research group (else None: ADNIMERGE gives the diagnosis)."""
    table = load_table(csv, id_column="Image Data ID", required=COLLECTION)
    ids = parse_column(table, "Image Data ID", _parse_image_id, source=csv)
    fields = {
        "age": parse_column(table, "Age", parse_age, source=csv),
        "sex": parse_column(table, "Sex", parse_sex, source=csv),
        "group": parse_column(table, "Group", parse_diagnosis, source=csv)
        if groups
        else pd.Series(None, index=table.index, dtype=object),
        "acquired": parse_column(table, "Acq Date", _parse_date, source=csv),
    }
    missing = [index for index in table.index if len(images.get(ids[index], [])) != 1]
    if missing:
        _missing_images(csv, root, table, ids, images, missing)
    scans = []
    for index in table.index:
        subject = str(table.loc[index, "Subject"]).strip()
        session, path = f"{subject}_{ids[index]}", str(images[ids[index]][0])
        identity = {"scan": session, "patient_id": subject, "session_id": session, "path": path}
        scans.append(identity | {name: values[index] for name, values in fields.items()})
    return scans


def _missing_images(
    csv: Path, root: Path, table: pd.DataFrame, ids: pd.Series, images: dict[str, list[Path]], missing: list[object]
) -> None:
    """Raise for listed images with no file or several: name them and the fix."""
    twice = [index for index in missing if images.get(ids[index])]
    if twice:
        shown = ", ".join(str(path) for path in images[ids[twice[0]]][:SHOWN])
        raise ValueError(f"{where(csv, twice[0])}: image {ids[twice[0]]} has several files ({shown}); keep one")
    dicom = any("DCM" in str(table.loc[index].get("Format", "")).upper() for index in missing)
    raise FileNotFoundError(
        f"{csv}: {len(missing)} listed image(s) have no NIfTI file under {root} (e.g. "
        f"{', '.join(ids[index] for index in missing[:SHOWN])}); unpack the collection's download there"
        + ("; images listed as DCM need the NIfTI download (or dcm2niix)" if dicom else "")
    )


def _parse_image_id(value: object) -> str:
    text = "" if is_missing(value) else str(value).strip()
    if not re.fullmatch(r"I?\d+", text):
        raise ValueError(f"Image Data ID '{value}' is not an IDA image id like I13722")
    return text if text.startswith("I") else f"I{text}"  # the IDA id is I + ADNIMERGE's IMAGEUID


def _parse_date(value: object) -> date | None:
    if is_missing(value):
        return None
    for layout in DATE_FORMATS:
        try:
            return datetime.strptime(str(value).strip(), layout).date()
        except ValueError:
            continue
    raise ValueError(f"date '{value}' not understood; the IDA writes M/D/YYYY, ADNIMERGE YYYY-MM-DD")


def _parse_years(value: object) -> float | None:
    try:
        return None if is_missing(value) else float(str(value).strip())
    except ValueError:
        raise ValueError(f"Years_bl '{value}' is not a number of years") from None


def _visits(csv: Path) -> dict[str, list[Visit]]:
    """ADNIMERGE's dated visits by PTID (rows without EXAMDATE cannot be matched to a scan and are left out)."""
    table = load_table(csv, required=ADNIMERGE_COLUMNS)
    columns = {
        "date": parse_column(table, "EXAMDATE", _parse_date, source=csv),
        "dx": parse_column(table, "DX", parse_diagnosis, source=csv),
        "dx_bl": parse_column(table, "DX_bl", parse_diagnosis, source=csv),
        "age": parse_column(table, "AGE", parse_age, source=csv),
        "years": parse_column(table, "Years_bl", _parse_years, source=csv),
    }
    visits: dict[str, list[Visit]] = {}
    for index in table.index:
        if columns["date"][index] is not None:
            visit = (columns["date"][index], str(table.loc[index, "VISCODE"]).strip())
            visit += tuple(columns[name][index] for name in ("dx", "dx_bl", "age", "years"))
            visits.setdefault(str(table.loc[index, "PTID"]).strip(), []).append(visit)  # type: ignore[arg-type]
    return visits


def _at_visit(visits: list[Visit], acquired: date | None, max_days: int) -> tuple[float | None, str | None]:
    """(age at the scan, diagnosis at its visit) from the participant's ADNIMERGE visits (module docstring)."""
    if acquired is None or not visits:
        return None, None
    day, code, dx, dx_bl, age, years = min(visits, key=lambda visit: (abs((visit[0] - acquired).days), visit[0]))
    at_scan = None if age is None or years is None else age + years + (acquired - day).days / DAYS_PER_YEAR
    if abs((day - acquired).days) > max_days:
        return at_scan, None
    return at_scan, dx if dx is not None or code != "bl" else dx_bl
