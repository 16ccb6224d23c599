"""Deploy conversion of a trained segmentor: heads bit for bit, a plain backbone, logits proven equal, refusals."""
import re
from pathlib import Path

import pytest
import torch
from conftest import CITYSCAPES_SAMPLE, DEMO_FRAME, FRAME, REPO, SAMPLE_CONFIG, run_tool_in_process
from mmengine.config import Config

import repseg.deploy.convert
from repseg.apis import init_segmentor, segment
from repseg.deploy import AlreadyDeployed, VerificationError, convert_to_deploy
from repseg.models import reparameterize
from repseg.utils.io import CheckpointError, safe_torch_load

REL_TOL, MIN_AGREEMENT = 1e-4, 0.9999


@pytest.fixture(scope='module')
def trained(sample_checkpoint) -> Path:
    return sample_checkpoint


@pytest.fixture(scope='module')
def converted(trained, tmp_path_factory):
    if not DEMO_FRAME.is_file():
        pytest.skip(f'demo frame not found at {DEMO_FRAME}')
    out = tmp_path_factory.mktemp('deploy')
    result = convert_to_deploy(SAMPLE_CONFIG, trained, out, image=DEMO_FRAME, shape=(128, 256), log=lambda s: None)
    return out, result


def test_trained_model_moved_away_from_init(trained):
    state = safe_torch_load(trained)['state_dict']
    var = state['backbone.stage1.0.rbr_dense.bn.running_var']
    assert (var - 1).abs().max() > 1e-3 and state['backbone.stage1.0.rbr_dense.bn.num_batches_tracked'] == 3


def test_conversion_keeps_heads_and_plain_backbone(trained, converted):
    out, result = converted
    source = safe_torch_load(trained)['state_dict']
    saved = safe_torch_load(out / 'deploy.pth')
    deploy = saved['state_dict']
    heads = {k for k in source if not k.startswith('backbone.')}
    assert heads == {k for k in deploy if not k.startswith('backbone.')}
    for key in heads:
        assert deploy[key].dtype == source[key].dtype and torch.equal(deploy[key], source[key]), key
    backbone = [k for k in deploy if k.startswith('backbone.')]
    assert backbone and all(re.fullmatch(r'backbone\.stage\d(\.\d+)?\.rbr_reparam\.(weight|bias)', k) for k in backbone)
    assert len(backbone) == 2 * (1 + 2 + 4 + 14 + 1)  # A0: 22 blocks, weight + bias each
    meta = saved['meta']
    assert meta['deploy'] and meta['arch'] == 'A0' and meta['source_checkpoint'] == str(trained.resolve())
    assert [v['input'] for v in meta['verification']] == ['random(seed=0)', DEMO_FRAME.name]

    cfg = Config.fromfile(str(out / 'deploy_config.py'))
    assert cfg.model.backbone.deploy is True and cfg.model.backbone.init_cfg is None
    model = init_segmentor(out / 'deploy_config.py', out / 'deploy.pth')
    convs = [n for n, m in model.backbone.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(n.endswith('rbr_reparam') for n in convs)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.backbone.modules())


def test_logits_match_on_random_input_and_real_frames(trained, converted):
    _, result = converted
    random, demo = result.diffs  # the real 1024x512 frame went through the sample config's test pipeline
    assert demo.shape == (19, 512, 1024)
    for diff in result.diffs:
        assert diff.max_logit > 1 and diff.max_abs <= REL_TOL * diff.max_logit, str(diff)
        assert diff.agreement >= MIN_AGREEMENT, str(diff)
    # independently of the converter's own check: the real 256x128 frame, through the public inference API
    ref = segment(init_segmentor(SAMPLE_CONFIG, trained), FRAME).seg_logits.data
    out = segment(init_segmentor(converted[0] / 'deploy_config.py', converted[0] / 'deploy.pth'), FRAME)
    dep = out.seg_logits.data
    assert (ref - dep).abs().max() <= REL_TOL * ref.abs().max()
    assert (ref.argmax(0) == dep.argmax(0)).float().mean() >= MIN_AGREEMENT


def _corrupt(trained: Path, tmp_path: Path, edit) -> Path:
    ckpt = safe_torch_load(trained)
    edit(ckpt['state_dict'])
    path = tmp_path / 'bad.pth'
    torch.save(ckpt, path)
    return path


def test_cli_refuses_negative_bn_variance_and_writes_nothing(trained, tmp_path):
    key = 'backbone.stage2.3.rbr_1x1.bn.running_var'
    bad = _corrupt(trained, tmp_path, lambda sd: sd[key].__setitem__(0, -0.5))
    out = tmp_path / 'out'
    proc = run_tool_in_process('convert_to_deploy.py', SAMPLE_CONFIG, bad, '--out-dir', out, cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith('error: ') and key in error and 'non-positive BN running variance' in error
    assert not out.exists()


@pytest.mark.parametrize('edit, message', [
    (lambda sd: sd.pop('decode_head.conv_seg.bias'), 'missing 1 key'),
    (lambda sd: sd['auxiliary_head.convs.0.bn.running_var'].__setitem__(3, 0.0), 'non-positive BN running variance'),
    (lambda sd: sd['backbone.stage3.0.rbr_dense.conv.weight'].view(-1).__setitem__(7, float('nan')), 'NaN'),
], ids=['missing-key', 'zero-variance-in-head', 'nan'])
def test_refuses_invalid_checkpoints(trained, tmp_path, edit, message):
    bad = _corrupt(trained, tmp_path, edit)
    with pytest.raises(CheckpointError, match=message):
        convert_to_deploy(SAMPLE_CONFIG, bad, tmp_path / 'out', log=lambda s: None)
    assert not (tmp_path / 'out').exists()


def test_beyond_tolerance_writes_nothing_and_keeps_old_outputs(trained, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'deploy.pth').write_bytes(b'old')
    (out / 'deploy_config.py').write_text('old')

    def wrong_reparameterize(module):  # e.g. an identity tap lost: must be caught, not written
        reparameterize(module)
        module.stage2[3].rbr_reparam.weight.data[:, :, 1, 1] += 1e-2
        return module

    with pytest.raises(FileExistsError, match=r'out: holds an earlier result \(deploy.pth, deploy_config.py\); '
                                              r'choose another out-dir, or pass --force'):
        convert_to_deploy(SAMPLE_CONFIG, trained, out, shape=(128, 256), log=lambda s: None)
    monkeypatch.setattr(repseg.deploy.convert, 'reparameterize', wrong_reparameterize)
    with pytest.raises(VerificationError, match='nothing written'):
        convert_to_deploy(SAMPLE_CONFIG, trained, out, shape=(128, 256), force=True, log=lambda s: None)
    assert (out / 'deploy.pth').read_bytes() == b'old' and (out / 'deploy_config.py').read_text() == 'old'
    assert sorted(p.name for p in out.iterdir()) == ['deploy.pth', 'deploy_config.py']
    assert [p.name for p in tmp_path.iterdir()] == ['out']  # no temporary folder left beside it


def test_already_deployed_is_a_clear_no_op(converted, tmp_path):
    out = converted[0]
    for config in (out / 'deploy_config.py', SAMPLE_CONFIG):
        with pytest.raises(AlreadyDeployed, match='already in deploy form'):
            convert_to_deploy(config, out / 'deploy.pth', tmp_path / 'again', log=lambda s: None)
    assert not (tmp_path / 'again').exists()


def _test_config(tmp_path: Path, base: Path, name: str) -> Path:
    """``base`` evaluated on the shared Cityscapes val frame (the sample data may not exist yet)."""
    path = tmp_path / name
    path.write_text(
        f"_base_ = [{str(base)!r}]\n"
        f"test_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(\n"
        f"    data_root={str(CITYSCAPES_SAMPLE) + '/'!r},\n"
        f"    data_prefix=dict(img_path='leftImg8bit/val', seg_map_path='gtFine/val'),\n"
        f"    pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]))\n")
    return path


def _miou(config: Path, checkpoint: Path, work_dir: Path) -> float:
    proc = run_tool_in_process('test.py', config, checkpoint, '--work-dir', work_dir, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.findall(r'mIoU: ([\d.]+)', proc.stdout + proc.stderr)
    assert found, proc.stdout[-2000:]
    return float(found[-1])


def test_tools_test_gives_the_same_miou_on_the_deploy_pair(trained, converted, tmp_path):
    out = converted[0]
    source = _miou(_test_config(tmp_path, SAMPLE_CONFIG, 'train_cs.py'), trained, tmp_path / 'wd_train')
    deploy = _miou(_test_config(tmp_path, out / 'deploy_config.py', 'deploy_cs.py'), out / 'deploy.pth',
                   tmp_path / 'wd_deploy')
    assert abs(source - deploy) <= 0.01, (source, deploy)
