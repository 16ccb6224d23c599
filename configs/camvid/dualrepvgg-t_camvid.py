# DualRepVGG-T on CamVid from scratch on a CPU: ./dualrepvgg-s_camvid.py (the real-time models' shared data, crops,
# batch, iterations and schedule) with the 64-channel detail branch.
#   OMP_NUM_THREADS=1 python tools/train.py configs/camvid/dualrepvgg-t_camvid.py --cfg-options randomness.seed=1
_base_ = ['./dualrepvgg-s_camvid.py']
model = dict(backbone=dict(arch='t'), decode_head=dict(in_channels=64), auxiliary_head=dict(in_channels=64))
