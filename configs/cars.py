"""TOFA on cars (196 classes): 2156 labelled training images (Table 2), the rest of
the training split unlabelled; section 4.2 defaults (configs/default.py).
Starts from AlphaNet's ImageNet supernet (init.checkpoint='alphanet', in
$TOFA_WEIGHTS_DIR or ~/.cache/tofa_jax/weights; the run says how to get it if missing):
it covers 21.42M of the maxnet's 21.81M parameters, all but the fresh 196-class head.

The data: TFDS's `cars196` download (ai.stanford.edu/~jkrause) is gone (tensorflow/datasets
issue 5656), so `prepare_data --dataset=cars` fails. Read a copy of Stanford Cars in class
folders through the folder source instead, e.g. Kaggle's
jutrera/stanford-car-dataset-by-classes-folder unzipped in DIR (8,144 train, 8,041 test):
  python -m tofa_jax.main --config=configs/cars.py --workdir=runs/cars \
    --config.data.name=folder --config.data.folder=DIR/car_data/car_data/train \
    --config.data.test_folder=DIR/car_data/car_data/test
A cars196 prepared before the link died still loads from data.data_dir."""

from configs import default


def get_config():
  c = default.get_config()
  c.data.name = "cars"
  c.data.num_labelled = 2156
  return c
