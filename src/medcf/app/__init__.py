"""`medcf app`: the web UI (gradio) over the shipped or a given model, local only by default.

`session` holds what the app does (open, edit, inpaint, write results) as plain functions, tested
without a browser; `ui` lays out the gradio page and is tested in headless Chromium.
"""

from medcf.app.session import Source, Workspace, demo_patient, open_upload, run_edit, run_inpaint

__all__ = ["Source", "Workspace", "demo_patient", "open_upload", "run_edit", "run_inpaint"]
