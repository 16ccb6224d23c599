# RepSeg's recommended model for a CPU, on Cityscapes (trained on GPUs): DualRepVGG-T (docs/realtime.md says why).
_base_ = ['./dualrepvgg/dualrepvgg-t_2xb6-120k_cityscapes-1024x1024.py']
