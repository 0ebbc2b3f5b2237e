"""What the research notebooks (`notebooks/`) share: the quick-settings flag, a fresh workdir, inline figures."""
import io
import os
import tempfile

SMALL_ENV = "NEUROJAX_NOTEBOOK_SMALL"  # "1": the notebooks' short settings (CI sets it)


def small_settings() -> bool:
    """Whether the notebook should use its short settings (`NEUROJAX_NOTEBOOK_SMALL=1`)."""
    return os.environ.get(SMALL_ENV) == "1"


def fresh_workdir(name: str) -> str:
    """A new empty directory for a notebook's runs: each execution trains from scratch."""
    return tempfile.mkdtemp(prefix=f"neurojax_{name}_")


def show(fig) -> None:
    """Display a matplotlib figure inline as a PNG, whatever the backend (training selects Agg for
    loss.png, under which `plt.show()` shows nothing), and close it."""
    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    display(Image(buf.getvalue()))
