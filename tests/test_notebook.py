"""examples/quickstart.ipynb executed by a real Jupyter kernel (nbclient), as a notebook user runs it."""

import json
import shutil

import nbformat
import pytest
from conftest import REPO
from nbclient import NotebookClient

pytestmark = pytest.mark.slow
NOTEBOOK = REPO / "examples" / "quickstart.ipynb"


def test_the_committed_notebook_has_no_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(code) == 5 and all(c.get("outputs", []) == [] and c.get("execution_count") is None for c in code)


def test_quickstart_runs_in_a_jupyter_kernel(tmp_path):
    shutil.copy(NOTEBOOK, tmp_path / "quickstart.ipynb")  # its outputs and files stay out of the repository
    nb = nbformat.read(tmp_path / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    board = code[2].outputs[-1].data["text/plain"]
    assert "xresnet18" in board and "tiny" in board
    shown = code[3].outputs[-1].data["text/html"]  # `exp`: the report inline
    assert "<iframe srcdoc=" in shown and "Leaderboard" in shown and "data:image/png;base64" in shown
    bars = [
        o for o in code[1].outputs if o.output_type == "display_data" and "<progress" in o.data.get("text/html", "")
    ]
    assert bars, "no notebook progress bar while running"
    last = code[4].outputs[-1].data["text/plain"]
    assert "predicted" in last and "lung_aca" in last and "refer" in last
    assert (tmp_path / "quickstart-work" / "lung.pkl").is_file()
