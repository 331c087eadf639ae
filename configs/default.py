"""Defaults of TOFA section 4.2; dataset configs override `data` and a few others."""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  # JAX's persistent compilation cache: a restarted run loads its compiled step from
  # here. '' turns it off; single-process runs only.
  c.jax_cache_dir = "~/.cache/tofa_jax/jax_cache"

  c.model = ml_collections.ConfigDict()
  c.model.space = "tofa"
  c.model.custom_space = ml_collections.ConfigDict()  # used when space == 'custom'
  c.model.mflops_window = ()  # () keeps the space's; (low, high) overrides it
  c.model.resolutions = ()  # () keeps the space's; e.g. (128,) for a CPU run
  c.model.dropout_rate = 0.3
  c.model.drop_connect_rate = 0.2
  c.model.depthwise_impl = "auto"
  c.model.dtype = "auto"  # float32 | bfloat16 | auto (bf16 on GPU/TPU, f32 on CPU)

  c.init = ml_collections.ConfigDict()
  c.init.checkpoint = ""  # converted directory, or a .pth with init.format
  c.init.format = ""
  c.init.keep_head = False  # transfer: a fresh task head

  c.data = ml_collections.ConfigDict()
  c.data.name = ""
  c.data.data_dir = ""  # TFDS data_dir ('' = TFDS default)
  c.data.folder = ""  # data.name='folder': root/<class>/<image>
  c.data.test_folder = ""
  c.data.unlabelled_folder = ""
  # stop | skip: an unreadable or truncated image in a folder stops the run (naming it)
  # or is left out (one line counts and names them).
  c.data.bad_images = "stop"
  c.data.num_labelled = 0  # TOFA Table 2; 0 = every training example labelled
  c.data.fully_labelled = False  # section 4.4
  c.data.val_fraction = 0.0  # held out of training for palette search (4.6 uses 0.3)
  # Batches load at this size and are rescaled on device (bicubic) to each subnet's
  # resolution; None = the largest training resolution (model.resolutions or the space's).
  c.data.image_size = config_dict.placeholder(int)
  c.data.train_split = "train"
  c.data.test_split = "test"
  c.data.mean = ()  # () = the init checkpoint's, else ImageNet's
  c.data.std = ()
  c.data.threads = 4

  c.loss = ml_collections.ConfigDict()
  c.loss.variant = "tofa"  # lab | fm | dist | tofa (Table 4)
  c.loss.threshold = 0.95
  c.loss.label_smoothing = 0.1
  c.loss.beta = 1.0  # AlphaNet eq. 8 KD weight on labelled data (1 = TOFA)
  c.loss.temperature = 1.0

  c.train = ml_collections.ConfigDict()
  c.train.steps = 10_000
  c.train.batch_size = 32  # labelled, global
  c.train.unlabelled_batch_size = 32
  c.train.sampling = "sandwich"  # sandwich | rss_epoch | rss_batch
  c.train.num_random = 2
  c.train.remat = "layer"  # none | scan | layer (docs/benchmarks.md, memory table)
  c.train.log_every = 50
  c.train.checkpoint_every = 500
  c.train.eval_every = 2_000
  c.train.stop_after_steps = -1  # checkpoint and stop early (testing preemption)

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 0.01
  c.optim.momentum = 0.9
  c.optim.weight_decay = 1e-5
  c.optim.warmup_epochs = 5

  c.augment = ml_collections.ConfigDict()
  c.augment.crop_scale = (0.35, 1.0)
  c.augment.crop_ratio = (3 / 4, 4 / 3)
  c.augment.flip = True
  c.augment.jitter = 0.4
  c.augment.num_ops = 2
  c.augment.cutout = 0.5

  c.evals = ml_collections.ConfigDict()
  c.evals.batch_size = 64
  c.evals.bn_batches = 4
  c.evals.subnets = ("max", "min")

  # python -m tofa_jax.palette (TOFA 3.4 and 4.6, REG-NAS, RSS 6.1); docs/palette.md.
  c.palette = ml_collections.ConfigDict()
  c.palette.method = "rule"  # rule (Algorithm 2) | evolution | random | regnas
  c.palette.compare = ()  # more methods to run for the comparison plot (Figures 8-11)
  c.palette.metric = "mflops"  # mflops | params | memory | latency
  c.palette.index = "last"  # Algorithm 2's index: last | score
  c.palette.budgets = ()  # explicit budgets in the metric's unit
  c.palette.num_budgets = 5  # else this many, evenly spaced over the space's range
  c.palette.resolutions = ()  # () = every resolution the run trained at (in Omega)
  c.palette.val_fraction = 0.3  # carved from training data if data.val_fraction = 0
  c.palette.seed = 0
  c.palette.random_samples = 10  # random search: subnets per budget
  c.palette.evolution = ml_collections.ConfigDict()
  c.palette.evolution.population = 32
  c.palette.evolution.generations = 10
  c.palette.evolution.parents = 8
  c.palette.evolution.num_mutations = 16
  c.palette.evolution.num_crossovers = 16
  c.palette.evolution.mutate_prob = 0.1
  c.palette.reward = "R2"  # regnas: R0 (Top-1) | R1 (-NFR) | R2 (Top-1 - NFR)
  c.palette.lambdas = ()  # (lambda1, lambda2) overrides the preset
  c.palette.latency_batch = 32  # latency is reported at batch 1 and this batch
  c.palette.latency_repeats = 20  # timed runs per figure, after latency_warmup: the median
  c.palette.latency_warmup = 2
  c.palette.latency_runtime = "jax"  # jax | onnxruntime | tflite (docs/export.md)
  c.palette.latency_threads = 1  # onnxruntime/tflite threads (jax: XLA's own pool)
  c.palette.latency_table = ""  # lut.json (python -m tofa_jax.latency_table): metric=latency
  c.palette.export = True  # each member as a static model under workdir/palette/
  c.palette.population_bins = 0  # RSS population evaluation: MFLOPs bins (0 = off)
  c.palette.population_per_bin = 10  # random subnets per bin
  c.palette.progress_every_s = 30.0  # a search's progress line (subnets evaluated, ETA)
  return c
