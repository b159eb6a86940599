"""`modelpipe build`: build and push the runtime image, skipping it when its content-hash tag exists."""

from __future__ import annotations

import argparse
from pathlib import Path

from modelpipe.cli.common import CommandOutput, add_step_parser, parse_bool
from modelpipe.config import registry_auth_file
from modelpipe.errors import ConfigError
from modelpipe.steps.build import STORAGE_DRIVERS, BuildResult, build_runtime, use_prebuilt_image

EXAMPLES = """\
  modelpipe build --context-dir runtime --image quay.io/my-org/diffusers-runtime \\
      --authfile ~/.docker/config.json --results-dir /tekton/results
  modelpipe build --context-dir runtime --containerfile runtime/Containerfile \\
      --image 127.0.0.1:5000/dev/diffusers-runtime --tls-verify false --build-args TORCH_VERSION=2.13.0
  modelpipe build --build false --prebuilt-image quay.io/my-org/diffusers-runtime@sha256:<64 hex>
"""
# The key a kubernetes.io/dockerconfigjson Secret mounts its docker config under.
_SECRET_KEY = ".dockerconfigjson"


def _build_arg(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text.partition('=')[0]!r}")
    return key, value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``build`` subcommand."""
    parser = add_step_parser(
        subparsers,
        "build",
        help="build and push the runtime image with buildah (skipped when already pushed)",
        description="Build the serving runtime image with buildah, tagged by the content hash of the build "
        "context, Containerfile and build args; if that tag already exists in the registry (skopeo), "
        "return its digest without building. With --build false nothing is built: --prebuilt-image (or "
        "nothing) becomes the result, so later steps always take the image from this step. "
        "Results: IMAGE_URL (REPO:TAG), IMAGE_DIGEST (sha256:...), IMAGE_REF (REPO@sha256:..., what "
        "register and deploy use; empty when no image was built or given).",
        examples=EXAMPLES,
    )
    parser.add_argument(
        "--build",
        type=parse_bool,
        default=True,
        metavar="true|false",
        help="false skips building and reports --prebuilt-image instead (default true)",
    )
    parser.add_argument(
        "--prebuilt-image",
        default="",
        metavar="REPO@sha256:...",
        help="with --build false: the image to report; empty leaves the ServingRuntime's image in use",
    )
    parser.add_argument(
        "--context-dir", type=Path, metavar="DIR", help="build context folder (required to build)"
    )
    parser.add_argument(
        "--containerfile",
        type=Path,
        metavar="PATH",
        help="Containerfile (default: CONTEXT_DIR/Containerfile)",
    )
    parser.add_argument("--image", metavar="REPO", help="image repository without tag (required to build)")
    parser.add_argument(
        "--build-args",
        type=_build_arg,
        nargs="*",
        default=[],
        metavar="K=V",
        help="build args (default: none)",
    )
    parser.add_argument(
        "--tls-verify",
        type=parse_bool,
        default=True,
        metavar="true|false",
        help="verify registry TLS (default true)",
    )
    parser.add_argument("--storage-driver", choices=STORAGE_DRIVERS, default="vfs", help="default: vfs")
    parser.add_argument(
        "--authfile",
        type=Path,
        metavar="PATH",
        help="docker config file with registry credentials, or a folder holding one as .dockerconfigjson "
        "(a mounted kubernetes.io/dockerconfigjson Secret) (default: env REGISTRY_AUTH_FILE, "
        "else $DOCKER_CONFIG/config.json, else buildah's default)",
    )
    parser.add_argument(
        "--storage-root", type=Path, metavar="DIR", help="buildah storage root (default: buildah's own)"
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="rebuild every step, ignoring buildah's layer cache (needed when an ARG only feeds LABEL/ENV)",
    )
    parser.set_defaults(handler=run)


def _output(result: BuildResult | None, *, built: str) -> CommandOutput:
    if result is None:
        return CommandOutput(
            results={"IMAGE_URL": "", "IMAGE_DIGEST": "", "IMAGE_REF": ""},
            summary={"built": "false (no image given: the ServingRuntime's image is used)"},
        )
    return CommandOutput(
        results={
            "IMAGE_URL": result.image_url,
            "IMAGE_DIGEST": result.image_digest,
            "IMAGE_REF": result.image_ref,
        },
        summary={"built": built, "seconds": f"{result.seconds:.1f}"},
    )


def run(args: argparse.Namespace) -> CommandOutput:
    """Check flags, build (or skip), and map the result to IMAGE_URL / IMAGE_DIGEST / IMAGE_REF."""
    if not args.build:
        return _output(use_prebuilt_image(args.prebuilt_image), built="false (--build false: prebuilt image)")
    required = (("--context-dir", args.context_dir), ("--image", args.image))
    missing = [flag for flag, value in required if not value]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} required to build", fix="pass them, or --build false")
    build_args: dict[str, str] = {}
    for key, value in args.build_args:
        if key in build_args:
            raise ConfigError(f"--build-args {key} given twice", fix="pass each build arg once")
        build_args[key] = value
    authfile = args.authfile or (Path(found) if (found := registry_auth_file()) else None)
    if authfile is not None and authfile.is_dir():
        authfile = authfile / _SECRET_KEY
    result = build_runtime(
        context=args.context_dir,
        image=args.image,
        containerfile=args.containerfile,
        build_args=build_args,
        tls_verify=args.tls_verify,
        storage_driver=args.storage_driver,
        authfile=authfile,
        storage_root=args.storage_root,
        no_cache=args.no_cache,
    )
    return _output(result, built="false (tag already pushed)" if result.skipped else "true")
