"""Longitudinal pairs (earlier scan → later scan of one patient) out of OASIS-2, OASIS-3 and ADNI as distributed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medcf.data.adapters.adni import adni
from medcf.data.adapters.brain import brain_mri
from medcf.data.adapters.oasis import oasis2
from medcf.data.adapters.oasis3 import oasis3
from medcf.data.io import read_image
from medcf.data.longitudinal import longitudinal_pairs, slice_pairs
from test_adapters_brain_layouts import SLICES, write_adni, write_oasis2, write_oasis3


def pair_table(pairs: pd.DataFrame) -> list[tuple[object, ...]]:
    """(earlier session, later session, earlier diagnosis, later diagnosis) per pair; unknown as None."""
    columns = pairs[["earlier_session_id", "later_session_id", "earlier_diagnosis", "later_diagnosis"]]
    return [tuple(None if pd.isna(value) else value for value in row) for row in columns.itertuples(index=False)]


def test_oasis2_pairs_follow_the_visits(tmp_path: Path) -> None:
    write_oasis2(tmp_path)
    pairs = longitudinal_pairs(oasis2(tmp_path, slices=SLICES))
    assert pair_table(pairs) == [
        ("OAS2_0001_MR1", "OAS2_0001_MR2", "CN", "CN"),
        ("OAS2_0002_MR1", "OAS2_0002_MR2", "AD", "AD"),
        ("OAS2_0002_MR2", "OAS2_0002_MR3", "AD", "AD"),
        ("OAS2_0018_MR1", "OAS2_0018_MR3", "CN", "CN"),
        ("OAS2_0018_MR3", "OAS2_0018_MR4", "CN", "AD"),  # the conversion
    ]
    assert list(pairs["age_gap"]) == [1.0, 1.0, 4.0, 1.0, 4.0]
    first = pairs.iloc[0]
    assert first["id"] == "OAS2_0001_MR1_to_OAS2_0001_MR2" and first["sex"] == "M"
    assert (first["earlier_age"], first["later_age"]) == (87.0, 88.0)
    assert first["later_path"] == str(tmp_path / "OAS2_RAW_PART1/OAS2_0001_MR2/RAW/mpr-1.nifti.img")
    every = longitudinal_pairs(oasis2(tmp_path, slices=SLICES), consecutive=False)
    assert len(every) == 7 and ("OAS2_0002_MR1", "OAS2_0002_MR3", "AD", "AD") in pair_table(every)
    wide = longitudinal_pairs(oasis2(tmp_path, slices=SLICES), consecutive=False, min_gap_years=4.0)
    assert sorted(wide["id"]) == ["OAS2_0002_MR1_to_OAS2_0002_MR3", "OAS2_0002_MR2_to_OAS2_0002_MR3",
                                  "OAS2_0018_MR1_to_OAS2_0018_MR4", "OAS2_0018_MR3_to_OAS2_0018_MR4"]  # fmt: skip


def test_oasis3_pairs_have_the_gap_in_days_from_entry(tmp_path: Path) -> None:
    write_oasis3(tmp_path)
    pairs = longitudinal_pairs(oasis3(tmp_path, slices=SLICES))
    assert pair_table(pairs) == [
        ("OAS30001_MR_d0129", "OAS30001_MR_d0757", "CN", "CN"),
        ("OAS30002_MR_d0050", "OAS30002_MR_d1200", "CN", "AD"),
    ]
    assert list(pairs["age_gap"]) == pytest.approx([628 / 365.25, 1150 / 365.25])


def test_adni_pairs_skip_repeat_scans_of_one_visit(tmp_path: Path) -> None:
    write_adni(tmp_path)
    pairs = longitudinal_pairs(adni(tmp_path, slices=SLICES))
    assert pair_table(pairs) == [
        ("002_S_0295_I13721", "002_S_0295_I55275", "CN", "CN"),  # the MP-RAGE repeat of the baseline visit
        ("002_S_0295_I13722", "002_S_0295_I55275", "CN", "CN"),
        ("002_S_0295_I55275", "002_S_0295_I100001", "CN", None),
        ("002_S_0729_I40657", "002_S_0729_I118671", "MCI", "AD"),
    ]
    assert pairs["age_gap"].iloc[0] == pytest.approx(1.10062)
    assert pairs["age_gap"].iloc[3] == pytest.approx(2.06982 + 14 / 365.25)


def test_slice_pairs_match_slice_indices_of_both_volumes(tmp_path: Path) -> None:
    write_oasis2(tmp_path)
    cohort = oasis2(tmp_path, slices=SLICES)
    pairs = slice_pairs(cohort)
    assert len(pairs) == 5 * len(SLICES)
    first = pairs.iloc[0]
    assert first["id"] == "OAS2_0001_MR1_to_OAS2_0001_MR2_axial007" and first["slice_index"] == 7
    assert (first["earlier_id"], first["later_id"]) == ("OAS2_0001_MR1_axial007", "OAS2_0001_MR2_axial007")
    earlier = read_image(first["earlier_path"], index=int(first["slice_index"]), axis=cohort.axis)
    later = read_image(first["later_path"], index=int(first["slice_index"]), axis=cohort.axis)
    assert earlier.shape == later.shape == (20, 16)
    only = slice_pairs(cohort, longitudinal_pairs(cohort).iloc[:1])
    assert list(only["later_id"]) == ["OAS2_0001_MR2_axial007", "OAS2_0001_MR2_axial008"]


def test_pairs_need_sessions_and_ages(tmp_path: Path, oasis: tuple[Path, Path]) -> None:
    root, csv = oasis
    cohort = brain_mri(root, csv, id_column="ID")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['session_id'\]; longitudinal pairs need a cohort"):
        longitudinal_pairs(cohort)
