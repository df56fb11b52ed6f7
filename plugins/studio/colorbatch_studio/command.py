"""``colorbatch studio FOLDER [--out OUT]``: a local page to review a folder, place hints, adjust colour."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

HELP = """Open a local web page to review FOLDER's images, compare before and after, place colour hints and adjust the colour strength.

Hints and each image's chroma are written as the sidecar NAME.hints.json beside each image (what `colorbatch colorize` reads); Save writes the full-resolution output into OUT through the batch path itself, so the batch command the page shows (`colorbatch colorize FOLDER --out OUT` with the studio's --model, --size and threads, one image per batch) gives the same pixels. The page's thumbnails go to OUT/.studio. Nothing else is written. Binds 127.0.0.1 and prints the URL; stop with Ctrl-C.
"""


def register(app) -> None:
    from colorbatch.api import handle_errors

    @app.command(name="studio", help=HELP)
    @handle_errors
    def studio(
        folder: Path = typer.Argument(..., help="The folder of images to review (recursive)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder for Save (default: FOLDER-colorized beside FOLDER)."),
        model: Optional[str] = typer.Option(
            None, "--model", "-m", help="Checkpoint (.safetensors); default: $COLORBATCH_MODEL, then the newest trained model."
        ),
        size: int = typer.Option(256, "--size", help="Network resolution, as for colorize (the long side is fitted)."),
        port: int = typer.Option(8765, "--port", help="Port to listen on (0: any free port)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (default: this machine only)."),
        device: str = typer.Option("cpu", "--device", help="auto | cpu | cuda | mps."),
        fmt: Optional[str] = typer.Option(None, "--format", "-f", help="Save as png | jpg | webp | tiff (default: the input's)."),
        display: int = typer.Option(1024, "--display", help="Long side of the detail view's images, in pixels."),
        threads: Optional[int] = typer.Option(
            None, "--threads", min=1, help="Network threads on CPU (default: the free cores at start; the batch command shown uses the same)."),
    ):
        run_studio(folder, out, model=model, size=size, port=port, host=host, device=device, fmt=fmt,
                   display=display, threads=threads)


def run_studio(folder: Path, out: Optional[Path], *, model=None, size: int = 256, port: int = 8765,
               host: str = "127.0.0.1", device: str = "cpu", fmt: Optional[str] = None, display: int = 1024,
               threads: Optional[int] = None) -> None:
    from colorbatch.api import ColorbatchError, stderr_console

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ColorbatchError(f"{folder}: not a folder (give the folder of images to review)")
    folder = folder.resolve()
    out = Path(out).expanduser().resolve() if out is not None else folder.with_name(folder.name + "-colorized")
    if out == folder:
        raise ColorbatchError(f"--out {out}: is FOLDER itself; give another folder for the outputs")
    if fmt is not None and fmt.lower() not in ("png", "jpg", "jpeg", "webp", "tif", "tiff"):
        raise ColorbatchError(f"--format {fmt}: expected png, jpg, webp or tiff")
    console = stderr_console()
    from colorbatch_studio.engine import Studio

    studio = Studio(folder, out, model=model, size=size, device=device, display=display, fmt=fmt, threads=threads)
    from colorbatch_studio.server import bind, build_app, serve, url_of

    try:
        sock = bind(host, port)
    except OSError as exc:
        raise ColorbatchError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); try --port 0") from None
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"warning: listening on {host}: anyone who can reach it can read FOLDER and write hints",
                      style="yellow", markup=False, highlight=False)
    url = url_of(sock)
    console.print(f"studio: {len(studio.ids)} images in {folder}; outputs to {out}", markup=False, highlight=False)
    if studio.hints_reason:
        console.print(studio.hints_reason, markup=False, highlight=False)
    console.print(f"open {url}  (Ctrl-C stops)", markup=False, highlight=False)
    typer.echo(url)
    try:
        serve(build_app(studio), sock)
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the signal after its clean shutdown
    finally:
        sock.close()
    console.print("studio stopped", markup=False, highlight=False)
