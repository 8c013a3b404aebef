"""Use a trained run: top-k newsgroups for texts, with the run's own tokenizer and parameters.

    python -m rnnbench.predict --workdir=runs/gru-... "text to classify" ["another" ...]
    python -m rnnbench.predict --workdir=runs/gru-... --input=texts.txt   # one text per line
"""

import json
import sys

from absl import app
from absl import flags

from rnnbench import cli
from rnnbench import runs

_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir written by run.py.")
_INPUT = flags.DEFINE_string("input", None, "A file with one text per line.")
_TOP_K = flags.DEFINE_integer("top_k", 3, "How many classes to print per text.")
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object per text instead.")


def main(argv):
  if _TOP_K.value < 1:
    sys.exit(f"error: --top_k={_TOP_K.value}: must be >= 1 (the classes shown per text); "
             "pass e.g. --top_k=3")
  texts = list(argv[1:])
  if _INPUT.value:
    texts += runs.read_texts(_INPUT.value, "--input")
  if not texts:
    raise app.UsageError("give texts as arguments or --input=FILE")
  run = runs.load_run(_WORKDIR.value)
  for text, best in zip(texts, runs.top_k(run.probabilities(texts), run.label_names, _TOP_K.value)):
    if _JSON.value:
      print(json.dumps({"text": text, "top_k": [{"label": l, "probability": p} for l, p in best]}))
    else:
      shown = text if len(text) <= 60 else text[:57] + "..."
      print(f"{shown!r}\n" + "\n".join(f"  {p:7.2%}  {l}" for l, p in best))


if __name__ == "__main__":
  cli.run(main, required=["workdir"])
