"""tools/infer.py over a folder that holds unreadable files: each is reported on one line and skipped, every readable
image (also those after it) still gets its outputs, and the run ends with exit status 2."""
import textwrap

import cv2
import numpy as np
import torch
from conftest import REPO, run_tool_in_process
from mmengine.config import Config
from mmseg.registry import MODELS

from repseg.apis import inference, init_segmentor, sync_bn_to_bn

# the sample config's PSPNet with a tiny RepVGG (one block per stage, width 0.25): built and run in a second or two
TINY_CONFIG = """
    _base_ = ['{repo}/configs/pspnet_repvgg_a0_sample.py']
    model = dict(backbone=dict(arch=dict(_delete_=True, num_blocks=(1, 1, 1, 1), width_factor=(0.25,) * 4)),
                 decode_head=dict(in_channels=128, channels=16), auxiliary_head=dict(in_channels=64, channels=8))
"""


def test_infer_reports_and_skips_unreadable_files(tmp_path):
    config = tmp_path / 'tiny.py'
    config.write_text(textwrap.dedent(TINY_CONFIG.format(repo=REPO)))
    torch.manual_seed(0)
    model = MODELS.build(sync_bn_to_bn(Config.fromfile(str(config)).model.to_dict()))
    model.init_weights()
    checkpoint = tmp_path / 'tiny.pth'
    torch.save(model.state_dict(), checkpoint)

    rng = np.random.default_rng(0)
    images = tmp_path / 'images'
    (images / 'sub').mkdir(parents=True)
    good = {'c_good': rng.integers(0, 256, (64, 96, 3), np.uint8), 'sub/d_good': rng.integers(0, 256, (48, 64, 3),
                                                                                              np.uint8)}
    for stem, image in good.items():
        cv2.imwrite(str(images / f'{stem}.png'), image)
    png = cv2.imencode('.png', rng.integers(0, 256, (64, 96, 3), np.uint8))[1].tobytes()
    (images / 'a_truncated.png').write_bytes(png[:len(png) // 2])  # sorted before the good images, on purpose
    (images / 'b_notes.png').write_text('not an image, whatever the name says\n')

    out = tmp_path / 'out'
    proc = run_tool_in_process('infer.py', config, checkpoint, images, '--out-dir', out, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert errors == [f'error: {images / name}: not a readable image (truncated, corrupt or not an image file); '
                      f'skipped' for name in ('a_truncated.png', 'b_notes.png')]
    assert 'wrote 6 files' in proc.stdout and '(2 unreadable input file(s) skipped)' in proc.stdout

    written = sorted(str(p.relative_to(out)) for p in out.rglob('*.png'))
    assert written == sorted(f'{stem}_{kind}.png' for stem in good for kind in ('color', 'overlay', 'trainIds'))
    segmentor = init_segmentor(config, checkpoint)
    for stem, image in good.items():
        assert np.array_equal(cv2.imread(str(out / f'{stem}_trainIds.png'), cv2.IMREAD_UNCHANGED),
                              inference(segmentor, image))
