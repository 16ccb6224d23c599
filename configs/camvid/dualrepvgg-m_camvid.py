# DualRepVGG-M on CamVid: ./dualrepvgg-s_camvid.py with the medium arch.
_base_ = ['./dualrepvgg-s_camvid.py']
model = dict(backbone=dict(arch='m'), decode_head=dict(in_channels=128), auxiliary_head=dict(in_channels=128))
