"""A real federation on 127.0.0.1 for the benchmarks that run README.md's flow: ``fedvst cloud
serve`` and two ``fedvst edge serve`` processes that join it, stopped by the process groups they
were started in, and a phone (``fedvst stylize --share-frames``, every frame a key frame) that
sends a clip through both edges."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fedvst.processes import free_port, sigterm_as_interrupt, start_cli, stop_process_group, wait_for_port


@dataclass
class Loopback:
    """The running federation: its folder, the cloud's process and ports, the edges' ports."""

    folder: Path
    cloud: subprocess.Popen
    port: int  # the SuperLink
    registry_port: int
    edge_ports: list[int] = field(default_factory=list)

    @property
    def cloud_dir(self) -> Path:
        return self.folder / "cloud"

    def edge_dir(self, index: int) -> Path:
        return self.folder / f"edge{index}"

    def share(self, clip: Path, style: Path, name: str, timeout_s: float, edges: list[int] | None = None) -> None:
        """A phone stylizes ``clip`` (a video, or a photo) with ``style`` through every edge (or those
        of the indices in ``edges``) and lets them keep every frame (log ``FOLDER/NAME.log``, output
        ``FOLDER/NAME.mp4`` or ``.png``); RuntimeError if it fails."""
        from stylizer.images import IMAGE_SUFFIXES

        ports = self.edge_ports if edges is None else [self.edge_ports[i] for i in edges]
        edges = [arg for port in ports for arg in ("--edge", f"127.0.0.1:{port}")]
        log = self.folder / f"{name}.log"
        photo = clip.suffix.lower() in IMAGE_SUFFIXES
        keys = [] if photo else ["--keyframes", "interval", "--interval", "1"]  # every frame a key frame
        phone = start_cli(["stylize", str(clip), "--style", str(style), "-o",
                           str(self.folder / f"{name}.{'png' if photo else 'mp4'}"), *edges, "--share-frames", *keys],
                          log)
        if phone.wait(timeout=timeout_s) != 0:
            raise RuntimeError(f"the phone ({name}) failed: {log.read_text()[-500:]}")


def write_phone_clip(path: Path, frames: Sequence, size: tuple[int, int]) -> Path:
    """``frames`` ((H, W, 3) uint8) resized to ``size`` (H, W; even sides) as an H.264 file at 25 fps:
    a phone's video."""
    import av

    from stylizer.render import resize_frame

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(resize_frame(image, size), format="rgb24")))
        container.mux(stream.encode(None))
    return path


@contextlib.contextmanager
def loopback_federation(folder: Path, cloud_options: Sequence[str], edge_options: Sequence[Sequence[str]],
                        timeout_s: float) -> Iterator[Loopback]:
    """A cloud (``cloud_options`` after its data folder and ports) and one edge per entry of
    ``edge_options`` (after its port, data folder and the cloud's addresses), each waited for up to
    ``timeout_s``; all stopped when the block ends, SIGTERM included (it stops the block as Ctrl-C
    does, so that no cloud or edge outlives the benchmark)."""
    with sigterm_as_interrupt():
        yield from _running_federation(folder, cloud_options, edge_options, timeout_s)


def _running_federation(folder: Path, cloud_options: Sequence[str], edge_options: Sequence[Sequence[str]],
                        timeout_s: float) -> Iterator[Loopback]:
    port, registry_port = free_port(), free_port()
    cloud = start_cli(["cloud", "serve", "--data-dir", str(folder / "cloud"), "--port", str(port),
                       "--registry-port", str(registry_port), *cloud_options], folder / "cloud.log")
    federation = Loopback(folder, cloud, port, registry_port)
    edges: list[subprocess.Popen] = []
    try:
        wait_for_port(registry_port, cloud, log=folder / "cloud.log", timeout_s=timeout_s)
        for i, options in enumerate(edge_options):
            federation.edge_ports.append(free_port())
            edges.append(start_cli(["edge", "serve", "--port", str(federation.edge_ports[i]), "--data-dir",
                                    str(federation.edge_dir(i)), "--cloud", f"127.0.0.1:{port}", "--registry",
                                    f"127.0.0.1:{registry_port}", *options], folder / f"edge{i}.log"))
        for i, (edge, edge_port) in enumerate(zip(edges, federation.edge_ports, strict=True)):
            wait_for_port(edge_port, edge, log=folder / f"edge{i}.log", timeout_s=timeout_s)
        yield federation
    finally:
        for edge in edges:
            stop_process_group(edge)
        stop_process_group(cloud)
