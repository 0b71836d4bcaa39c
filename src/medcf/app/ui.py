"""The gradio page: pick or upload an image, see its clinical row, edit it, inpaint it, download results.

Binds 127.0.0.1 unless told otherwise; uploads are limited by type and size (session.check_upload) and by
gradio's max_file_size; the page loads no web fonts or analytics, so it works with no network. Uploads carry
patient names and IDs (file name, DICOM header): an image upload is deleted from gradio's temporary folder as
soon as it is read (the app keeps an anonymous copy), a mask upload when its tab closes, and whatever is left
when the app stops (gradio's delete_cache).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phone-home from a tool that runs offline
import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from medcf.app.session import (  # noqa: E402
    DEMO_PATIENTS,
    MAX_UPLOAD_MB,
    UPLOAD_SUFFIXES,
    Source,
    Workspace,
    demo_patient,
    discard_upload,
    format_row,
    open_slice,
    open_upload,
    parse_row,
    run_edit,
    run_inpaint,
)
from medcf.data import read_image  # noqa: E402
from medcf.figures import to_rgb  # noqa: E402

PATIENTS = [f"held-out patient {i + 1}" for i in range(DEMO_PATIENTS)]
DELETE_CACHE = (3600, 3600)  # (every, older than) seconds: gradio deletes stray uploads hourly and all at stop
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no Google Fonts fetch


def build_app(workspace: Workspace) -> gr.Blocks:
    """The Blocks page bound to one loaded model and output folder."""
    anatomy = workspace.anatomy
    with gr.Blocks(title="medcf", delete_cache=DELETE_CACHE) as page:
        gr.Markdown(
            f"# medcf: {anatomy.title}\n"
            f"Model: `{workspace.model.folder.name}` ({workspace.model.resolution} px, semi-synthetic training data; "
            "not for diagnosis). Results are written to the output folder and offered for download."
        )
        source = gr.State(None)
        with gr.Row():
            with gr.Column():
                patient = gr.Dropdown(PATIENTS, value=None, label="demo patient", elem_id="patient")
                upload = gr.File(label="or upload PNG / DICOM / NIfTI", file_types=list(UPLOAD_SUFFIXES),
                                 elem_id="upload")  # fmt: skip
                image = gr.Image(
                    label="image (as the model sees it)", type="numpy", interactive=False, elem_id="image"
                )
                volume_slice = gr.Number(label="axial slice of a NIfTI volume (0-based)", precision=0, minimum=0,
                                         elem_id="slice")  # fmt: skip
                row = gr.Textbox(label="clinical row (field=value, editable)", elem_id="row")
            with gr.Column():
                edit = gr.Dropdown(list(anatomy.edits), value=anatomy.default_edit, label="edit", elem_id="edit")
                strength = gr.Slider(0.2, 1.0, value=0.8, step=0.05, label="strength (fraction of steps re-run)")
                drift = gr.Slider(-0.2, 0.2, value=float(workspace.model.settings.get("latent_drift", 0.0)),
                                  step=0.01, label="Latent Drift δ")  # fmt: skip
                steps = gr.Slider(1, 100, value=int(workspace.model.settings.get("num_inference_steps", 25)), step=1,
                                  label="steps")  # fmt: skip
                run = gr.Button("Run counterfactual", variant="primary", elem_id="run")
                result = gr.Image(label="counterfactual", interactive=False, elem_id="counterfactual")
                attribution = gr.Image(label="signed attribution M = x − x_cf (red: brighter than the counterfactual)",
                                       interactive=False, elem_id="attribution")  # fmt: skip
                histogram = gr.Image(label="difference histogram", interactive=False, elem_id="histogram")
        with gr.Accordion("Inpaint a region", open=False):
            with gr.Row():
                canvas = gr.ImageEditor(label="paint the region", type="numpy", sources=("upload",), elem_id="canvas")
                mask_file = gr.File(label="or upload a white-on-black mask", file_types=[".png"], elem_id="mask")
            prompt = gr.Textbox(label="prompt for the region", value=anatomy.inpaint_prompt)
            inpaint = gr.Button("Inpaint", elem_id="inpaint")
            inpainted = gr.Image(label="inpainted", interactive=False, elem_id="inpainted")
        downloads = gr.File(label="download results", file_count="multiple", interactive=False, elem_id="downloads")
        status = gr.Markdown(elem_id="status")

        opened = [source, image, row, canvas, status, volume_slice]
        patient.change(lambda name: _open(workspace, patient=name), patient, opened)
        upload.upload(lambda file: _open(workspace, upload=file), upload, opened)
        volume_slice.submit(lambda *a: _slice(workspace, *a), [source, volume_slice, row], opened)
        run.click(lambda *a: _edit(workspace, *a), [source, row, edit, strength, drift, steps],
                  [result, attribution, histogram, downloads, status])  # fmt: skip
        inpaint.click(lambda *a: _inpaint(workspace, *a), [source, row, canvas, mask_file, prompt, steps],
                      [inpainted, downloads, status])  # fmt: skip
        _discard_masks_on_unload(page, mask_file)
    return page


def _discard_masks_on_unload(page: gr.Blocks, mask_file: gr.File) -> None:
    """A session's uploaded mask stays while its tab is open (inpaint may run again) and is deleted on close."""
    masks: dict[str, str] = {}  # session hash → gradio's temporary path of the session's latest mask upload

    def remember(file: str | None, request: gr.Request) -> None:
        if previous := masks.pop(request.session_hash, None):
            discard_upload(previous)
        if file:
            masks[request.session_hash] = file

    def forget(request: gr.Request) -> None:
        if file := masks.pop(request.session_hash, None):
            discard_upload(file)

    mask_file.upload(remember, mask_file, None)
    page.unload(forget)


def _open(workspace: Workspace, *, patient: str | None = None, upload: str | None = None):
    if patient is None and upload is None:
        return None, None, "", None, "", None
    try:
        source = demo_patient(workspace, PATIENTS.index(patient)) if patient else open_upload(workspace, upload)
    except (ValueError, FileNotFoundError) as error:
        hidden = f"{Path(upload).parent}/" if upload else ""  # gradio's temporary folder means nothing to the user
        raise gr.Error(str(error).replace(hidden, "") if hidden else str(error)) from None
    finally:
        if upload:
            discard_upload(upload)  # read or refused, gradio's copy keeps the patient's name: delete it now
    name = patient or f"upload opened; the app keeps an anonymous copy, `{source.path.parent.name}/{source.path.name}`"
    return _opened(source, name)


def _slice(workspace: Workspace, source: Source | None, index: float | None, row: str):
    """Show another axial slice of the uploaded volume, keeping the row as typed."""
    if source is None or index is None:
        raise gr.Error("upload a NIfTI volume first, then choose its slice")
    try:
        shown = open_slice(workspace, _with_row(source, row), int(index))
    except ValueError as error:
        raise gr.Error(str(error)) from None
    return _opened(shown, f"slice {shown.index} of {shown.slices}")


def _opened(source: Source, status: str):
    """The outputs of opening an image: state, picture, row, inpainting canvas, status, slice number."""
    shown = _rgb(source.display)
    if source.slices > 1:
        status += f"; axial slice {source.index} of 0–{source.slices - 1} shown (type another, press Enter)"
    canvas = {"background": shown, "layers": [], "composite": shown}
    return source, shown, format_row(source.row), canvas, status, source.index


def _edit(workspace: Workspace, source: Source | None, row: str, edit: str, strength, drift, steps):
    source = _with_row(source, row)
    try:
        done = run_edit(workspace, source, workspace.anatomy.edits[edit], strength=strength, latent_drift=drift,
                        steps=int(steps))  # fmt: skip
    except (ValueError, FileNotFoundError) as error:
        raise gr.Error(str(error)) from None
    message = f"{edit}: written to `{done.folder}`"
    return (
        _rgb(done.counterfactual),
        _enlarge(done.overlay),
        str(done.histogram),
        [str(p) for p in done.files],
        message,
    )


def _inpaint(workspace: Workspace, source: Source | None, row: str, canvas, mask_file, prompt: str, steps):
    source = _with_row(source, row)
    try:
        mask = painted_mask(canvas, mask_file)
        folder, image = run_inpaint(workspace, source, mask, prompt, steps=int(steps))
    except (ValueError, FileNotFoundError) as error:
        raise gr.Error(str(error)) from None
    files = sorted(str(p) for p in folder.iterdir() if p.is_file())
    return _rgb(image), files, f"inpainted: written to `{folder}`"


def _with_row(source: Source | None, row: str) -> Source:
    if source is None:
        raise gr.Error("pick a demo patient or upload an image first")
    try:
        return dataclasses.replace(source, row=parse_row(row))
    except ValueError as error:
        raise gr.Error(str(error)) from None


def painted_mask(canvas: dict | None, mask_file: str | None) -> np.ndarray:
    """The painted layers' alpha (any layer), else the uploaded mask file's pixels."""
    if mask_file:
        return read_image(mask_file).pixels
    layers = (canvas or {}).get("layers") or []
    if not layers:
        raise ValueError("no mask: paint the region on the image, or upload a white-on-black mask PNG")
    painted = np.max([np.asarray(layer)[..., -1] for layer in layers], axis=0)
    return painted.astype(np.float32) / 255.0


def _rgb(display: np.ndarray) -> np.ndarray:
    """(R, R) in [0, 1] → (4R, 4R, 3) uint8, enlarged so a 64 px image is readable on screen."""
    return _enlarge(to_rgb(display))


def _enlarge(rgb: np.ndarray, factor: int = 4) -> np.ndarray:
    """Nearest-neighbour upscaling: the pixels the model saw, shown without smoothing."""
    return rgb.repeat(factor, axis=0).repeat(factor, axis=1)


def launch(workspace: Workspace, *, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Serve the app; returns (app, local url) when `block` is False (tests)."""
    page = build_app(workspace)
    page.queue(default_concurrency_limit=1)  # one model, one CPU job at a time
    _, url, _ = page.launch(
        server_name=host, server_port=port, prevent_thread_lock=not block, max_file_size=f"{MAX_UPLOAD_MB}mb",
        allowed_paths=[str(workspace.out)], ssr_mode=False, show_error=True, quiet=not block, theme=THEME,
    )  # fmt: skip
    return page, url
