# DualRepVGG-M on CamVid: ./dualrepvgg-s_camvid.py with the medium arch.
_base_ = ['./dualrepvgg-s_camvid.py']
model = dict(backbone=dict(arch='m'))
