"""What the web app does, without the web: open an upload or a demo patient, edit it, inpaint it.

Every action writes a new numbered folder under the app's output folder (the files the user downloads)
through the same library calls as `medcf counterfactual` and `medcf inpaint`, so the app and the CLI give
the same results. Errors are ValueError with one line naming the file and the fix; the UI shows them.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the app's worker threads have no display
import nibabel as nib
import numpy as np
from matplotlib import pyplot as plt
from PIL import Image

from medcf.app.anatomies import AppAnatomy, anatomy_of
from medcf.atomic import atomic_path
from medcf.data import read_image, write_image
from medcf.data.nifti import save_nifti
from medcf.data.synthetic.kinds import unseen_patients
from medcf.editing.files import clinical_row, load_model_input
from medcf.editing.to_folder import counterfactual_to_folder, inpaint_to_folder
from medcf.figures import overlay, save_figure, signed_heatmap
from medcf.pretrained import PretrainedModel

UPLOAD_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".nii", ".nii.gz")
MAX_UPLOAD_MB = 64  # a CR/DX radiograph is ≤ 30 MB; larger files are refused before they are read
DEMO_PATIENTS = 8
VOLUME = re.compile(r" holds (\d+) ([\w ]+); pass --index ")  # load_model_input's refusal of a file of several images
COPY_SUFFIXES = {"dicom": ".dcm", "nifti": ".nii.gz"}  # the app's copy of an upload; PNG/JPEG are copied as PNG


@dataclass
class Source:
    """The image being edited: a file (upload or demo patient written as PNG) and its clinical row."""

    path: Path
    row: dict[str, object]
    display: np.ndarray  # (R, R) in [0, 1]: what the model sees, centre-cropped and resized
    slices: int = 1  # axial slices of a NIfTI volume upload: then `path` is the volume and `index` the slice shown
    index: int | None = None


@dataclass
class Workspace:
    """The loaded model and the folder every result is written to (one new subfolder per action)."""

    model: PretrainedModel
    out: Path
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def anatomy(self) -> AppAnatomy:
        return anatomy_of(self.model)

    def new_folder(self, action: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        while True:
            folder = self.out / f"{next(self._counter):04d}-{action}"
            if not folder.exists():
                return folder


def check_upload(path: str | Path) -> Path:
    """Refuse files of the wrong type or size before any reader touches them."""
    path = Path(path)
    name = path.name.lower()
    if not name.endswith(UPLOAD_SUFFIXES):
        raise ValueError(f"{path.name}: not an image medcf reads; upload PNG, JPEG, DICOM (.dcm) or NIfTI (.nii.gz)")
    if path.stat().st_size == 0:
        raise ValueError(f"{path.name}: the file is empty; upload the image again")
    if path.stat().st_size > MAX_UPLOAD_MB * 1e6:
        raise ValueError(f"{path.name}: larger than {MAX_UPLOAD_MB} MB; upload a single 2-D image or slice")
    return path


def open_upload(workspace: Workspace, path: str | Path) -> Source:
    """An uploaded PNG/DICOM/NIfTI slice and the clinical row its header states (DICOM); a NIfTI volume opens at
    its middle axial slice, and `open_slice` shows another (which slice shows the finding is the user's call).

    The app edits a copy written into the workspace as `NNNN-upload/image.<dcm|nii.gz|png>` (a volume:
    `volume.nii.gz`): a new, anonymous file (geometry and voxels only), so no output names the patient or the file.
    """
    path = check_upload(path)
    try:
        source = load_model_input(path, workspace.model.resolution)
    except ValueError as error:
        if (held := VOLUME.search(str(error))) and path.name.lower().endswith((".nii", ".nii.gz")):
            return open_volume(workspace, path, slices=int(held[1]))
        if held:  # a multi-frame DICOM: its frames are not copied anonymously here
            raise ValueError(
                f"{path.name} holds {held[1]} {held[2]}; the app edits one 2-D image: upload a single slice, or "
                f"run `medcf counterfactual --index` on the file"
            ) from None
        raise  # medcf's readers already name the file and the fix
    except FileNotFoundError:
        raise
    except Exception as error:  # a decoder's own error on a corrupt file: one line, naming the file
        raise ValueError(f"{path.name}: cannot be read as an image ({type(error).__name__}); check the file") from None
    folder = workspace.new_folder("upload")
    folder.mkdir()
    suffix = COPY_SUFFIXES.get(source.image.provenance.format, ".png")
    copy = write_image(folder / f"image{suffix}", source.image.pixels, like=source.image)
    return Source(Path(copy), clinical_row(source.image, []), source.display)


def open_volume(workspace: Workspace, path: Path, *, slices: int) -> Source:
    """A NIfTI volume upload: an anonymous copy of its voxels and geometry, shown at its middle axial slice."""
    folder = workspace.new_folder("upload")
    folder.mkdir()
    copy = anonymous_nifti(path, folder / "volume.nii.gz")
    return open_slice(workspace, Source(copy, {}, np.zeros((1, 1)), slices=slices), slices // 2)


def open_slice(workspace: Workspace, source: Source, index: int) -> Source:
    """`source`'s volume shown at axial slice `index` (0-based), its clinical row kept."""
    if source.slices <= 1:
        raise ValueError("the image is a single slice; upload a NIfTI volume to choose slices")
    if not 0 <= index < source.slices:
        last = source.slices - 1
        raise ValueError(f"slice {index}: the volume has {source.slices} axial slices; choose 0 to {last}")
    shown = load_model_input(source.path, workspace.model.resolution, index=index)
    return Source(source.path, source.row, shown.display, slices=source.slices, index=index)


def anonymous_nifti(path: Path, out: Path) -> Path:
    """The upload's voxels, geometry and display window in a new NIfTI: no description, intent name or aux file
    (header fields where converters leave names and study IDs)."""
    source = nib.load(path)
    if len(source.shape) > 3 and int(np.prod(source.shape[3:])) > 1:
        raise ValueError(f"{path.name}: a 4-D series of {source.shape[3]} volumes; upload one 3-D volume")
    data = np.asarray(source.dataobj, dtype=np.float32).reshape(source.shape[:3])
    image = nib.Nifti1Image(data, source.affine)
    image.set_sform(source.affine, int(source.header["sform_code"]) or 2)
    image.set_qform(source.affine, int(source.header["qform_code"]) or 1)
    image.header.set_xyzt_units(*source.header.get_xyzt_units())
    image.header["cal_min"], image.header["cal_max"] = source.header["cal_min"], source.header["cal_max"]
    return save_nifti(image, out)


def discard_upload(path: str | Path) -> None:
    """Delete gradio's temporary copy of an upload, and its folder when empty: it holds the patient's file name
    and full header, and gradio would leave it in its temporary folder after the app stops."""
    path = Path(path)
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # gradio gives each upload its own folder; a shared one stays
        path.parent.rmdir()


def demo_patient(workspace: Workspace, index: int, *, seed: int = 0) -> Source:
    """Held-out semi-synthetic patient `index` of the model's anatomy (never in any training set), as a PNG."""
    if not 0 <= index < DEMO_PATIENTS:
        raise ValueError(f"demo patient {index + 1}: choose 1 to {DEMO_PATIENTS}")
    anatomy = workspace.anatomy
    _, render, row = unseen_patients(anatomy.kind, DEMO_PATIENTS, seed=seed, size=workspace.model.resolution)[index]
    folder = workspace.out / "patients"
    folder.mkdir(parents=True, exist_ok=True)
    path = write_image(folder / f"patient{index + 1}.png", render.image)
    return Source(Path(path), {key: row[key] for key in anatomy.row_fields if key in row}, render.image)


def parse_row(text: str) -> dict[str, str]:
    """'age=63, sex=F' → {'age': '63', 'sex': 'F'}; malformed parts raise one-line errors."""
    row = {}
    for part in filter(None, (piece.strip() for piece in text.replace("\n", ",").split(","))):
        key, separator, value = part.partition("=")
        if not separator or not key.strip() or not value.strip():
            raise ValueError(f"clinical row {part!r}: write field=value, e.g. age=63, sex=F, nodule=1")
        row[key.strip()] = value.strip()
    return row


def format_row(row: dict[str, object]) -> str:
    return ", ".join(f"{key}={value}" for key, value in row.items() if value not in (None, ""))


@dataclass(frozen=True)
class EditResult:
    folder: Path
    counterfactual: np.ndarray  # (R, R) in [0, 1]
    overlay: np.ndarray  # (R, R, 3) uint8: signed map M = x − x_cf over the image
    histogram: Path
    files: list[Path]


def run_edit(
    workspace: Workspace, source: Source, edit: str, *, strength: float, latent_drift: float, steps: int, seed: int = 0
) -> EditResult:
    """The counterfactual of `source` under `edit` (e.g. 'pleural_effusion=absent', 'age+=20'), its signed
    attribution map M = x − x_cf as an overlay, and the histogram of M."""
    model = workspace.model
    folder = counterfactual_to_folder(
        model.folder, source.path, [edit], workspace.new_folder("counterfactual"), row=_row_options(source.row),
        index=source.index, strength=strength, num_inference_steps=steps, latent_drift=latent_drift, seed=seed,
        guidance_scale=float(model.settings.get("guidance_scale", 3.0)), components=model.components,
        precision=model.precision,
    )  # fmt: skip
    original = _read_png(folder / "original.png")
    edited = _read_png(folder / "counterfactual.png")
    signed = original - edited
    with atomic_path(folder / "map.npy") as temporary, temporary.open("wb") as handle:
        np.save(handle, signed)
    limit = max(float(np.abs(signed).max()), 1e-6)
    shown = overlay(original, signed_heatmap(signed, limit=limit), np.abs(signed) / limit)
    save_figure(Image.fromarray(shown), folder / "overlay.png")
    histogram = difference_histogram(signed, folder / "histogram.png", title=edit)
    return EditResult(folder, edited, shown, histogram, sorted(p for p in folder.iterdir() if p.is_file()))


def run_inpaint(workspace: Workspace, source: Source, mask: np.ndarray, prompt: str, *, steps: int, seed: int = 0):
    """The region `mask` (H, W, any size: resized like the image) regenerated from `prompt`; (folder, image)."""
    if not prompt.strip():
        raise ValueError("inpainting needs a prompt, e.g. 'A chest X-ray with consolidation.'")
    if not (mask > 0.5).any():
        raise ValueError("the mask is empty: paint the region to regenerate, or upload a white-on-black mask")
    model, folder = workspace.model, workspace.new_folder("inpaint")
    mask_path = write_image(workspace.out / "patients" / f"mask-{folder.name}.png", (mask > 0.5).astype(np.float32))
    inpaint_to_folder(
        model.folder, source.path, mask_path, prompt, folder, num_inference_steps=steps, seed=seed, index=source.index,
        latent_drift=model.settings.get("latent_drift", 0.0), components=model.components, precision=model.precision,
    )  # fmt: skip
    return folder, _read_png(folder / "inpainted.png")


def difference_histogram(signed: np.ndarray, path: Path, *, title: str) -> Path:
    """Histogram of the signed map's values (how much brighter or darker, and where most pixels sit)."""
    figure, axes = plt.subplots(figsize=(4.2, 2.6), dpi=100)
    axes.hist(signed.ravel(), bins=60, color="#888")
    axes.axvline(0, color="k", lw=0.8)
    axes.set_xlabel("M = x − x_cf (display units)")
    axes.set_ylabel("pixels")
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
    return path


def _row_options(row: dict[str, object]) -> list[str]:
    return [f"{key}={value}" for key, value in row.items() if value not in (None, "")]


def _read_png(path: Path) -> np.ndarray:
    return read_image(path).pixels
