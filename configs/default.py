"""Defaults of TOFA section 4.2; dataset configs override `data` and a few others."""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  # JAX's persistent compilation cache: a restarted run loads its compiled step from
  # here. '' turns it off. Multi-process runs use it where every process sees the folder
  # (gs://..., a shared file system), checked at start (launch/README.md).
  c.jax_cache_dir = "~/.cache/tofa_jax/jax_cache"

  c.model = ml_collections.ConfigDict()
  c.model.space = "tofa"
  c.model.custom_space = ml_collections.ConfigDict()  # used when space == 'custom'
  c.model.mflops_window = ()  # () keeps the space's; (low, high) overrides it
  c.model.resolutions = ()  # () keeps the space's; e.g. (128,) for a CPU run
  c.model.dropout_rate = 0.3
  c.model.drop_connect_rate = 0.2
  c.model.depthwise_impl = "auto"
  # float32 | bfloat16 | auto (bf16 where the device computes it natively: TPU, or a GPU
  # of compute capability >= 8.0; f32 elsewhere)
  c.model.dtype = "auto"
  # Depth skip and kernel pick: on (lax.cond/switch: small subnets cost less), off (masks:
  # every subnet costs the max, no control flow), auto (off on GPU, where XLA copies each
  # conditional's predicate to the host; on elsewhere). docs/training.md.
  c.model.conditional = "auto"
  # BatchNorm statistics in a data-parallel step: global (synchronised over every device,
  # one all-reduce per BN and pass; N devices compute what one would) | device (per device,
  # no collective in BN, as PyTorch DDP without SyncBN; running statistics averaged over
  # devices once per step). docs/training.md says when each fits.
  c.model.bn_sync = "global"

  c.init = ml_collections.ConfigDict()
  # TOFA Algorithm 1 line 2: the maxnet starts from ImageNet weights. A named start
  # (tofa_jax/weights/named_starts.py: 'alphanet' covers every maxnet parameter of the
  # 'tofa' space but the task head), a converted directory, a .pth with init.format, or
  # 'random' (no pretrained start). A missing file stops the run naming how to get it.
  c.init.checkpoint = "alphanet"
  c.init.format = ""  # a .pth file's format (named starts know theirs)
  c.init.download = False  # fetch a named start that has a URL into the cache if missing
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
  # Decode and resize each training (and test) image once, before training, into a
  # memory-mapped cache at the loading size that every epoch reads (bitwise the same
  # batches): auto (sources that decode files: folders, TFDS; not the bundled arrays) | on |
  # off. Each process caches every record of its streams. docs/training.md, Input pipeline.
  c.data.cache = "auto"
  # '' = <workdir>/input_cache (~/.cache/tofa_jax/input_cache for a gs:// workdir). A local
  # disk reads fastest; one shared by runs reuses a cache across them (keyed by the data).
  c.data.cache_dir = ""
  # grain worker processes for the training streams (0: threads only). They help only when
  # decoding remains (data.cache='off') on hosts with spare cores.
  c.data.workers = 0

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
  # supernet | single: single trains one fixed network, train.arch, with loss.variant lab
  # (TOFA Table 3's Baseline) or fm (FixMatch); train.sampling is not used then.
  c.train.mode = "supernet"
  c.train.arch = "max"  # train.mode='single': max | min | random:SEED | an arch JSON file
  # sandwich (TOFA) | rss_epoch | rss_batch (RSS) | progressive_shrinking (OFA, RSS 4.1) |
  # RSS 6.3.2's bias study: single_min | single_mid | single_median | single_max |
  # min_then_max | max_then_min | alternating. All but sandwich train without a teacher (lab or fm).
  c.train.sampling = "sandwich"
  c.train.num_random = 2
  # progressive_shrinking: fractions of train.steps for its phases (full network, elastic
  # kernel, + depth, + width) and the subnets each step trains in each.
  c.train.ps_phases = (0.25, 0.25, 0.25, 0.25)
  c.train.ps_subnets = (1, 1, 2, 4)
  # none | scan | layer (docs/benchmarks.md, memory table) | auto: per program, none where
  # its compiled memory fits 90% of the device's, else layer; layer on a CPU, which
  # reports no memory limit (train/programs.py)
  c.train.remat = "auto"
  c.train.log_every = 50
  c.train.checkpoint_every = 500
  c.train.eval_every = 2_000
  c.train.stop_after_steps = -1  # checkpoint and stop early (testing preemption)

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 0.01
  c.optim.momentum = 0.9
  c.optim.weight_decay = 1e-5
  # The linear warm-up, in epochs or in steps: set one, the other -1. Epoch: one pass over
  # the training data the loss uses (docs/training.md, "Epochs"), so runs with other data
  # warm up for other step counts; warmup_steps gives every run the same.
  c.optim.warmup_epochs = 5.0  # a float: fractions of an epoch are allowed
  c.optim.warmup_steps = -1
  c.optim.schedule = "cosine"  # cosine (TOFA) | constant (RSS 6.3.2's two-subnet study)

  c.augment = ml_collections.ConfigDict()
  c.augment.crop_scale = (0.35, 1.0)
  c.augment.crop_ratio = (3 / 4, 4 / 3)
  c.augment.flip = True
  c.augment.jitter = 0.4
  # autoaugment (TOFA 4.2: torchvision AutoAugment, ImageNet policy) | randaugment (FixMatch)
  c.augment.strong = "autoaugment"
  c.augment.num_ops = 2  # randaugment only
  c.augment.cutout = 0.5  # randaugment only

  c.evals = ml_collections.ConfigDict()
  c.evals.batch_size = 64
  # Training images that recalibrate BN before every evaluation, in the trainer and the
  # palette alike (OFA: about 2,000), rounded up to whole evals.batch_size batches; all
  # of them when the run has fewer. Labelled and unlabelled training images, drawn with
  # `seed`, never validation ones (tofa_jax/data/calibration.py).
  c.evals.bn_images = 1000
  c.evals.subnets = ("max", "min")

  # python -m tofa_jax.palette (TOFA 3.4 and 4.6, REG-NAS, RSS 6.1); docs/palette.md.
  c.palette = ml_collections.ConfigDict()
  c.palette.method = "rule"  # rule (Algorithm 2) | evolution | random | regnas | predictor
  c.palette.compare = ()  # more methods to run for the comparison plot (Figures 8-11)
  c.palette.metric = "mflops"  # mflops | params | memory | latency
  c.palette.index = "last"  # Algorithm 2's index: last | score
  # bands: each budget's member from its size range (t_prev, t], "within each size range"
  # (TOFA 3.4) | literal: p(a) <= t alone, Algorithm 2 as printed (docs/palette.md)
  c.palette.rule = "bands"
  c.palette.budgets = ()  # explicit budgets in the metric's unit
  c.palette.num_budgets = 5  # else this many, evenly spaced over the space's range
  c.palette.resolutions = ()  # () = every resolution the run trained at (in Omega)
  c.palette.val_fraction = 0.3  # carved from training data if data.val_fraction = 0
  c.palette.seed = 0
  c.palette.random_samples = 10  # random search: subnets per budget
  # The searches' subnets cost at least this share of their budget (0: any up to it): the
  # study's REG-NAS members at matched MFLOPs, within 10% of the budget (docs/palette.md).
  c.palette.search_floor = 0.0
  c.palette.evolution = ml_collections.ConfigDict()
  c.palette.evolution.population = 32
  c.palette.evolution.generations = 10
  c.palette.evolution.parents = 8
  c.palette.evolution.num_mutations = 16
  c.palette.evolution.num_crossovers = 16
  c.palette.evolution.mutate_prob = 0.1
  # predictor (TOFA 4.6 (a)): subnets evaluated once, an MLP fitted, evolution on its output
  c.palette.predictor = ml_collections.ConfigDict()
  c.palette.predictor.samples = 1000  # subnets evaluated on validation data (TOFA: ~1000)
  c.palette.predictor.hidden = (400, 400, 400)  # OFA's accuracy predictor MLP
  c.palette.predictor.epochs = 200  # Adam on the MSE, over the training samples
  c.palette.predictor.batch_size = 128
  c.palette.predictor.learning_rate = 1e-3
  c.palette.predictor.holdout = 0.2  # share held out to report RMSE and Kendall tau
  c.palette.reward = "R2"  # regnas: R0 (Top-1) | R1 (-NFR) | R2 (Top-1 - NFR)
  c.palette.lambdas = ()  # (lambda1, lambda2) overrides the preset
  c.palette.cas = True  # regnas: search each member inside the previous one's CAS set
  c.palette.latency_batch = 32  # latency is reported at batch 1 and this batch
  c.palette.latency_repeats = 20  # timed runs per figure, after latency_warmup: the median
  c.palette.latency_warmup = 2
  c.palette.latency_runtime = "jax"  # jax | onnxruntime | tflite (docs/export.md)
  c.palette.latency_threads = 1  # onnxruntime/tflite threads (jax: XLA's own pool)
  c.palette.latency_table = ""  # lut.json (python -m tofa_jax.latency_table): metric=latency
  c.palette.export = True  # each member as a static model under workdir/palettes/NAME/models/
  # Folder name under workdir/palettes/; '' = METHOD-METRIC-BUDGETS (e.g. rule-mflops-n4).
  # A re-run of the same name replaces that palette only, once it has finished.
  c.palette.name = ""
  c.palette.population_bins = 0  # RSS population evaluation: MFLOPs bins (0 = off)
  c.palette.population_per_bin = 10  # random subnets per bin
  c.palette.progress_every_s = 30.0  # a search's progress line (subnets evaluated, ETA)
  return c
