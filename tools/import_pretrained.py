"""Convert an ImageNet-pretrained RepVGG checkpoint (official RepVGG or RepVGGplus, mmpretrain or timm) into RepSeg
backbone weights.

    python tools/import_pretrained.py checkpoints/RepVGG-B2-train.pth checkpoints/repseg_b2_backbone.pth
    python tools/import_pretrained.py checkpoints/RepVGGplus-L2pse-train256-acc84.06.pth checkpoints/l2pse.pth

DST is a plain state dict in RepSeg's backbone keys, for ``backbone=dict(init_cfg=dict(type='Pretrained',
checkpoint=DST))``. See docs/pretrained.md.
"""
import argparse
from pathlib import Path

from repseg.checkpoint import display_name, load_backbone_checkpoint
from repseg.engine import run_cli
from repseg.utils import CheckpointError, atomic_torch_save, check_out_file


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=' '.join(__doc__.split('\n\n')[0].split()))
    parser.add_argument('src', help='checkpoint to import (.pth; read with weights_only=True)')
    parser.add_argument('dst', help='where to write the RepSeg backbone state dict (written atomically)')
    parser.add_argument('--arch', help='expected arch, e.g. B2, RepVGG-B2 or RepVGGplus-L2pse; fails if the file '
                                       'does not fit it')
    parser.add_argument('--to-deploy', action='store_true', help='write the fused (re-parameterized) form')
    parser.add_argument('--force', action='store_true', help='replace DST if it exists')
    args = parser.parse_args(argv)
    if Path(args.dst).resolve() == Path(args.src).resolve():
        raise CheckpointError(f'{args.dst}: DST is the source file; choose another path')
    check_out_file(args.dst, args.force)
    state, info = load_backbone_checkpoint(args.src, arch=args.arch, to_deploy=args.to_deploy)
    atomic_torch_save(state, args.dst)
    print(f'format: {info.format} ({info.source_form}-time)')
    print(f'arch: {display_name(info.arch)}')
    print(f'tensors: {info.num_tensors} ({info.form}-time{", fused" if info.form != info.source_form else ""})')
    print(f'dropped: {info.dropped_text() if info.dropped else "nothing"}')
    print(f'wrote: {args.dst}')


if __name__ == '__main__':
    run_cli(main)
