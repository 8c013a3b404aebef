"""The reference notebook's settings (Keras 2.2, TF1 backend): 20 Newsgroups, LSTM(50), 2 epochs.

Every field can be overridden on the command line, e.g. ``--config.train.num_epochs=1``.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  # "20newsgroups", "synthetic", "tfds:<name>" (e.g. "tfds:imdb_reviews"), or your own
  # files: "csv", "jsonl", "folder" (docs/datasets.md).
  config.data.name = "20newsgroups"
  # Local copy of 20news-bydate.tar.gz; empty: $RNNBENCH_20NEWS_ARCHIVE, else scikit-learn's
  # fetch_20newsgroups (downloads into data_home / $SCIKIT_LEARN_DATA).
  config.data.archive = ""
  config.data.data_home = ""
  config.data.num_words = 20000
  config.data.maxlen = 100
  config.data.padding = "pre"
  config.data.truncating = "pre"
  # The tokenizer's splitting, as Keras' Tokenizer(filters=..., lower=...): these characters
  # become spaces. The default is Keras' (the notebook's); the generated tasks use "".
  config.data.filters = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
  config.data.lower = True
  config.data.validation_split = 0.1  # the LAST fraction of the train subset, as Keras' fit does
  config.data.max_train_docs = 0      # >0: use only the first N train documents (smoke runs)
  config.data.max_test_docs = 0       # >0: use only the first N test documents
  config.data.max_val_docs = 0        # >0: only the first N of a named validation split
  config.data.cache = True            # keep the prepared arrays (rnnbench/prepared_cache.py)
  # data.name == "synthetic": generated text with a learnable label signal.
  config.data.synthetic = ml_collections.ConfigDict()
  config.data.synthetic.num_train = 2000
  config.data.synthetic.num_test = 500
  config.data.synthetic.num_classes = 20
  config.data.synthetic.vocab_size = 5000
  config.data.synthetic.doc_len = 120
  # data.name == "listops", "recall", "delay": generated long-range tasks (docs/tasks.md).
  config.data.listops = ml_collections.ConfigDict()
  config.data.listops.num_train = 96000   # LRA's sizes
  config.data.listops.num_test = 2000
  config.data.listops.min_length = 500    # tokens per text
  config.data.listops.max_length = 2000
  config.data.listops.max_depth = 10
  config.data.listops.max_args = 10
  config.data.recall = ml_collections.ConfigDict()
  config.data.recall.num_train = 20000
  config.data.recall.num_test = 2000
  config.data.recall.num_keys = 64
  config.data.recall.num_values = 16
  config.data.recall.num_pairs = 32       # the text is 2 * num_pairs + 2 tokens
  config.data.delay = ml_collections.ConfigDict()
  config.data.delay.num_train = 20000
  config.data.delay.num_test = 2000
  config.data.delay.num_classes = 8
  config.data.delay.length = 1000         # tokens per text, the class token first
  config.data.delay.vocab_size = 64       # distractor tokens
  # data.name == "tfds:<name>": a TensorFlow Datasets dataset (pip install -e '.[tfds]').
  config.data.tfds = ml_collections.ConfigDict()
  config.data.tfds.train_split = "train"  # tfds split syntax, e.g. "train[:90%]"
  config.data.tfds.test_split = "test"    # "": no test split
  config.data.tfds.val_split = ""         # "": the last validation_split of train; else
                                          # validate on this split (validation_split unused)
  config.data.tfds.text_key = "text"      # ag_news_subset: "description"
  config.data.tfds.label_key = "label"
  config.data.tfds.data_dir = ""          # "": $TFDS_DATA_DIR, else ~/tensorflow_datasets
  config.data.tfds.download = True        # False: fail at once if not prepared in data_dir
  # data.name == "csv", "jsonl" or "folder": your own files (paths, or class folders).
  config.data.files = ml_collections.ConfigDict()
  config.data.files.train = ""
  config.data.files.test = ""             # "": no test split
  config.data.files.val = ""              # "": the last validation_split of train; else
                                          # validate on this file (validation_split unused)
  config.data.files.text_column = "text"  # csv column / jsonl key
  config.data.files.label_column = "label"
  config.data.files.delimiter = ","       # csv; "\\t" for tab-separated
  config.data.files.encoding = "utf-8"    # e.g. "latin-1" for the 20 Newsgroups folders

  config.model = ml_collections.ConfigDict()
  config.model.cell = "lstm"
  config.model.embed_dim = 128
  config.model.hidden_size = 50
  config.model.dense_size = 50
  config.model.dropout = 0.5
  # Model options (docs/model_options.md); these defaults are the notebook's model.
  config.model.num_layers = 1         # stacked RNN layers (params rnn, rnn_1, ...)
  config.model.bidirectional = False  # each layer as Keras' Bidirectional(merge_mode='concat')
  config.model.mask_padding = False   # token 0 is padding, skipped by the RNN and the pooling
  config.model.pooling = "max"        # "max", "mean", or "last" (the last step's output)
  config.model.block = False          # each layer in a residual + LayerNorm + MLP block
  # Keras 2.2's default; "sigmoid" is the modern one (Keras >= 2.3, PyTorch, cuDNN).
  config.model.recurrent_activation = "hard_sigmoid"
  config.model.reset_after = False    # GRU: False is the notebook's (Keras 2.2 default) GRU
  config.model.scan = "sequential"    # or "parallel" / "pallas" for cells with a linear recurrence
  config.model.unroll = 1             # time steps unrolled per scan iteration
  # lstm/gru recurrence: "auto" (Pallas GPU kernels on GPU, "fused" elsewhere), "fused"
  # (custom-VJP lax loops), "pallas" (interpret mode on CPU: slow), "nn_scan" (autodiff).
  config.model.impl = "auto"
  # Options of the other cells (each cell reads only the fields it declares):
  config.model.log_space = True       # mingru, minlstm: the log-space parallel scan
  config.model.state_size = 0         # lru: complex state size N (0: hidden_size)
  config.model.r_min = 0.9            # lru: ring initialisation radius range
  config.model.r_max = 0.999
  config.model.window = 2             # qrnn: convolution width
  config.model.max_length = 0         # indrnn: >0 bounds |u| <= 2**(1/max_length)

  config.train = ml_collections.ConfigDict()
  config.train.num_epochs = 2
  config.train.batch_size = 32
  config.train.eval_batch_size = 256
  config.train.learning_rate = 1e-3
  config.train.schedule = "constant"     # or "warmup_cosine" (optax), as the tasks use
  config.train.warmup_steps = 0          # warmup_cosine: linear warm-up steps
  config.train.decay_steps = 0           # warmup_cosine: cosine length; 0: the run's steps
  config.train.final_lr_fraction = 0.0   # warmup_cosine: the last step's share of the lr
  config.train.grad_clip = 0.0           # >0: clip gradients to this global norm first
  config.train.optimizer = "keras_adam"  # Keras' Adam (eps 1e-7 on sqrt(v)); or "adam" (optax)
  config.train.loss = "keras"            # clipped categorical cross-entropy; or "log_softmax"
  config.train.progress = True           # a progress bar while an epoch runs
  config.train.log_every_steps = 50      # running loss/accuracy to steps.jsonl; NaN check
  config.train.test_every_epoch = False  # also score the test subset after every epoch
  config.train.tensorboard = True        # TensorBoard events too, if tensorboardX is installed
  # Compute dtype: "bfloat16" (or "float16") runs the model in that dtype on float32 params
  # (mixed precision, for GPU/TPU); "float32" is exact.
  config.train.dtype = "float32"
  config.train.checkpoint_every_steps = 0  # >0: also checkpoint every N steps (end of epoch always)
  config.train.keep_checkpoints = 2        # the newest K checkpoints are kept
  config.train.overwrite = False           # True: discard the workdir's checkpoints and results
  # Data parallelism (docs/distributed.md): the batch is split across the devices of a mesh.
  config.train.num_devices = 0             # the first N devices; 0: all (of every process)
  config.train.shard_embedding = False     # split the embedding table and its Adam moments too

  # Several hosts: jax.distributed.initialize(), one process per host (docs/distributed.md).
  config.dist = ml_collections.ConfigDict()
  config.dist.initialize = False  # True: join a multi-process run (auto-detected on TPU/SLURM)
  config.dist.coordinator = ""    # "host:port" of process 0; "": $JAX_COORDINATOR_ADDRESS/auto
  config.dist.num_processes = 0   # 0: auto-detect
  config.dist.process_id = -1     # -1: auto-detect
  return config
