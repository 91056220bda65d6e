"""Downloads a model repository from the Hugging Face hub for `lookout model pull HUB_ID`.

Usage: python -m lookout_train hub pull --repo OWNER/NAME --dest DIR
Downloads the repository's files into DIR (huggingface_hub.snapshot_download), leaving out the formats
lookout never reads (TensorFlow, Flax, Rust weights) and the quantised / fp16 ONNX variants published
beside the fp32 graphs. The Go side then handles DIR like a local folder: an ONNX folder is copied, a
PyTorch checkpoint exported (lookout_train export). Without network the one line printed is
"error: ..." naming the hub id and what to do.
"""
from __future__ import annotations

import argparse
import os
import sys

IGNORE = ["*.h5", "*.msgpack", "*.ot", "tf_model*", "flax_model*", "rust_model*", "*.onnx_data_*",
          "onnx/*_quantized.onnx", "onnx/*_fp16.onnx", "onnx/*_int8.onnx", "onnx/*_uint8.onnx",
          "onnx/*_q4*.onnx", "onnx/*_bnb4.onnx", "*.tflite", "*.mlmodel", "coreml/*", "openvino/*"]


class HubError(Exception):
    """A download that failed; str() is one line."""


def pull(repo: str, dest: str, revision: str | None = None) -> str:
    """Downloads repo into dest; returns dest. Raises HubError (one line) when it cannot."""
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "15")
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "60")
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                            RevisionNotFoundError)
    except ImportError as e:  # pragma: no cover - the venv pins it
        raise HubError(f"huggingface_hub is not installed ({e}); run make deps-py") from e
    try:
        print(f"pull: fetching {repo} (revision {revision or 'main'}) into {dest}", flush=True)
        snapshot_download(repo_id=repo, revision=revision, local_dir=dest, ignore_patterns=IGNORE)
    except GatedRepoError as e:
        raise HubError(f"hub id {repo}: the repository is gated; accept its terms on huggingface.co and "
                       "log in (huggingface-cli login), then pull again") from e
    except RepositoryNotFoundError as e:
        raise HubError(f"hub id {repo}: no such repository on huggingface.co (or it is private); check the id") from e
    except RevisionNotFoundError as e:
        raise HubError(f"hub id {repo}: revision {revision} not found") from e
    except (LocalEntryNotFoundError, OSError) as e:
        # LocalEntryNotFoundError is what huggingface_hub raises when the hub cannot be reached at all.
        raise HubError(f"hub id {repo}: this machine cannot reach huggingface.co ({type(e).__name__}); pull it on a "
                       f"machine with internet (lookout model pull {repo} --out DIR) and copy the folder here") from e
    return dest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pull", help="download a hub repository into a folder")
    p.add_argument("--repo", required=True, help="hub id, owner/name")
    p.add_argument("--dest", required=True, help="folder to download into")
    p.add_argument("--revision", default=None, help="branch, tag or commit (default main)")
    a = ap.parse_args(argv)
    try:
        pull(a.repo, a.dest, a.revision)
    except HubError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    print(f"pull: {a.repo} -> {a.dest}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
