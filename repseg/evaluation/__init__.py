from .cityscapes_official import (evaluate_official, label_id_to_train_id_lut, prediction_name,
                                  train_id_to_label_id_lut)
from .labelid_writer import CityscapesLabelIdWriter

__all__ = ['CityscapesLabelIdWriter', 'evaluate_official', 'label_id_to_train_id_lut', 'prediction_name',
           'train_id_to_label_id_lut']
