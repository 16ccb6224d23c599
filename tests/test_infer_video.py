"""tools/infer.py on videos: per-frame outputs, the overlay video, frames per second, and broken or foreign files."""
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, make_tiny, run_tool_in_process

from repseg.apis import colorize, inference, init_segmentor

FRAMES = 8


def write_video(path: Path, frames: list) -> Path:
    """Motion-JPEG in Matroska: OpenCV writes it everywhere, and a copy cut short still opens (no index at the end)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10, frames[0].shape[1::-1])
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def read_frames(path: Path) -> list:
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


@pytest.fixture(scope='module')
def video_case(tmp_path_factory):
    root = tmp_path_factory.mktemp('video')
    config, checkpoint = make_tiny(root)
    scenes = sorted((root / 'data').rglob('*_leftImg8bit.png'))
    frames = [cv2.imread(str(scenes[i % len(scenes)])) for i in range(FRAMES)]
    video = write_video(root / 'street.mkv', frames)
    cut = root / 'cut.mkv'
    cut.write_bytes(video.read_bytes()[:video.stat().st_size // 2])
    (root / 'notes.mp4').write_text('not a video\n')
    return root, config, checkpoint, video, cut


def test_a_video_gives_every_frame_its_outputs_an_overlay_video_and_the_frame_rate(video_case, tmp_path):
    root, config, checkpoint, video, _ = video_case
    out = tmp_path / 'out'
    proc = run_tool_in_process('infer.py', config, checkpoint, video, '--out-dir', out, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(rf'street\.mkv: {FRAMES} frames in [\d.]+ s, [\d.]+ frames per second', proc.stdout)
    decoded = read_frames(video)  # what the model saw: the decoded (lossy) frames
    model = init_segmentor(config, checkpoint)
    for i in (0, FRAMES - 1):
        ids = cv2.imread(str(out / 'street' / f'frame_{i:06d}_trainIds.png'), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(ids, inference(model, decoded[i]))
        assert np.array_equal(cv2.imread(str(out / 'street' / f'frame_{i:06d}_color.png')), colorize(ids))
    overlays = read_frames(out / 'street_overlay.mp4')
    assert len(overlays) == FRAMES and overlays[0].shape == decoded[0].shape


def test_a_video_that_breaks_off_keeps_the_frames_before_the_break(video_case, tmp_path):
    root, config, checkpoint, video, cut = video_case
    out = tmp_path / 'out'
    proc = run_tool_in_process('infer.py', config, checkpoint, cut, root / 'notes.mp4', '--out-dir', out, cwd=REPO)
    assert proc.returncode == 2
    kept = len(read_frames(cut))
    assert 0 < kept < FRAMES
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert errors == [f'error: {cut}: the video breaks off after frame {kept} of {FRAMES}; the frames before it have '
                      f'their outputs; skipped',
                      f'error: {root / "notes.mp4"}: not a readable video (OpenCV cannot open it); skipped']
    assert sorted(p.name for p in (out / 'cut').glob('*_overlay.png')) == [
        f'frame_{i:06d}_overlay.png' for i in range(kept)]
    assert len(read_frames(out / 'cut_overlay.mp4')) == kept
