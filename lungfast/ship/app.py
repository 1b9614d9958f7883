"""`lungfast app`: a Gradio app for a saved model. Upload a tile, get class probabilities and the Grad-CAM
overlay of the predicted class. Endpoint `predict`; binds to 127.0.0.1 unless told otherwise.

The upload arrives as a file, untouched: lungfast reads its header (format, size) before anything decodes
it, so an oversize or non-image upload is refused in lungfast's words, fast, naming no server path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from lungfast.data.images import unreadable_reason
from lungfast.results import saliency
from lungfast.ship import model_io

MAX_PIXELS = 50_000_000  # ~7000 x 7000: bigger uploads are refused before decoding, not after
MAX_FILE_SIZE = "100mb"  # Gradio refuses larger uploads before they are stored


def check_upload(path: str | None) -> str | None:
    """None if the upload is an image we can take, else the message to show."""
    if not path:
        return "Upload an image first."
    too_big = f"the limit is {MAX_PIXELS // 1_000_000} megapixels. Crop a tile first."
    try:
        with Image.open(path) as im:  # reads the header only: nothing is decoded yet
            w, h = im.size
    except Image.DecompressionBombError:
        return f"That image is far too large; {too_big}"
    except Exception:
        return "That file is not an image lungfast can read (try a JPEG, PNG or TIFF tile)."
    if w * h > MAX_PIXELS:
        return f"That image is {w}x{h} pixels; {too_big}"
    reason = unreadable_reason(Path(path))
    return f"That image could not be decoded ({reason.replace(str(path), 'the upload')})." if reason else None


def advice(confidence: float, threshold: float | None, target: float = 0.99, delta: float = 0.05) -> str:
    """What the confidence means for the reader, against the model's certified referral threshold."""
    if threshold is None:
        return f"Confidence {confidence:.3f}. No referral threshold is recorded for this model (export it again)."
    if threshold == float("inf"):
        return (
            f"Confidence {confidence:.3f}. No confidence of this model could be certified {target:.0%} accurate "
            f"on new tile groups: **refer to a pathologist**."
        )
    if confidence < threshold:
        return (
            f"Confidence {confidence:.3f} is below {threshold:.3f}, the threshold certified {target:.0%} accurate "
            f"on new tile groups: **refer to a pathologist**."
        )
    return (
        f"Confidence {confidence:.3f} is at or above {threshold:.3f}: tiles kept there are certified "
        f"{target:.0%} accurate on new tile groups, with probability {1 - delta:.0%}. Research use only."
    )


def build(model_path: str, trusted: bool = False):
    import gradio as gr
    from pytorch_grad_cam.utils.image import show_cam_on_image

    learn = model_io.load(model_path, trusted)
    vocab = list(learn.dls.vocab)
    has_gradients = any(p.requires_grad for p in learn.model.parameters())
    threshold = model_io.refer_below(model_path)
    described = model_io.described(model_path)
    promise = {k: described[f"refer_{k}"] for k in ("target", "delta") if described.get(f"refer_{k}")}

    def predict(image):
        problem = check_upload(image)
        if problem:
            raise gr.Error(problem)
        dl = learn.dls.test_dl([image])
        probs = learn.get_preds(dl=dl)[0][0]
        top = int(probs.argmax())
        overlay = None  # a runtime without gradients (ONNX) has no Grad-CAM
        if has_gradients:
            maps, rgb = saliency.cam_maps(learn, [image], [top])
            overlay = show_cam_on_image(rgb[0].astype(np.float32), maps[0], use_rgb=True)
        return {c: float(p) for c, p in zip(vocab, probs)}, overlay, advice(float(probs[top]), threshold, **promise)

    with gr.Blocks(title="lungfast") as demo:
        gr.Markdown(
            f"# lungfast\nModel `{Path(model_path).name}`: {', '.join(vocab)}. Research use only; "
            f"not a diagnostic device."
        )
        with gr.Row():
            image = gr.File(type="filepath", label="H&E lung tile (JPEG, PNG, TIFF)")
            with gr.Column():
                label = gr.Label(num_top_classes=len(vocab), label="Class probabilities")
                verdict = gr.Markdown(label="Referral")
                cam = gr.Image(label="Grad-CAM of the predicted class")
        button = gr.Button("Predict")
        button.click(predict, inputs=image, outputs=[label, cam, verdict], api_name="predict")
        found = model_io.examples(model_path)
        if found:
            gr.Examples(found, inputs=image, label="Test-part tiles from the run")
    return demo


def serve(model_path: str, host: str = "127.0.0.1", port: int = 7860, trusted: bool = False, block: bool = True):
    for key, value in {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1"}.items():
        os.environ.setdefault(key, value)
    demo = build(model_path, trusted)
    demo.launch(
        server_name=host, server_port=port, prevent_thread_lock=not block, show_error=True, max_file_size=MAX_FILE_SIZE
    )
    return demo
