"""The plan of a run, made once from its config: the task, the resolved config, the data, and the cohorts of
models (models sharing one parameter-tree structure, e.g. every `ffn` model of any rank and seed) with their
per-model seeds, integer layer ranks, weight decays and parameter counts. Nothing is trained here.
"""
import contextlib
import dataclasses
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from dlgrok import configs, decompose, tasks


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  seed: int
  rank: configs.Rank  # its label ('r32', 'p50', 'full' for a dense model) is the row's `rank`
  pct: float | None  # rank as a percent of the first factorised layer's full rank
  layer_ranks: dict  # leaf path -> k
  weight_decay: float
  counts: dict  # whole-model {'trained', 'inference', 'dense'} parameter counts
  frac: float  # training fraction
  n_train: int  # training examples
  remedy_params: dict = dataclasses.field(default_factory=dict)  # the remedy's per-model hyperparameters


@dataclasses.dataclass(frozen=True)
class Cohort:
  name: str
  words: tuple  # layer-group and model words; () for the baseline
  model_words: tuple  # the words that change the model itself (task.model_words: 'preln', 'nopos')
  max_ranks: dict  # leaf path -> r, the largest rank in the cohort
  models: tuple
  first: int  # global index of the first model
  factorisation: str = "usv"  # how its decomposed layers are factorised (configs.FACTORISATIONS)
  remedy: configs.Remedy = configs.NO_REMEDY

  @property
  def row_factorisation(self):
    """The factorisation as rows and figures write it (their field `variant`): None for a dense cohort."""
    return self.factorisation if self.max_ranks else None

  @property
  def max_window(self):
    return max((m.remedy_params.get("window", 1) for m in self.models), default=1)


@dataclasses.dataclass(frozen=True)
class Plan:
  task: tasks.Task
  config: ml_collections.FrozenConfigDict  # resolved: steps, frac and weight_decays filled in
  data: tasks.Data
  cohorts: tuple
  eval_steps: tuple  # the evaluation points, 0 and the last step included
  # loop.cohort_fns' cohort functions, made once per plan so that what the memory estimate traces is what trains
  built: dict = dataclasses.field(default_factory=dict, init=False, compare=False, repr=False)

  @property
  def steps(self):
    return int(self.config.steps)

  @property
  def n_models(self):
    return sum(len(c.models) for c in self.cohorts)


EVAL_FLOPS = 0.1  # the default schedule's evaluations cost at most this share of the training FLOPs


def eval_cost(n_examples, batch_size):
  """One evaluation in train steps of FLOPs: a forward pass of every example against a forward and backward pass
  (~3 forwards) of one batch."""
  return n_examples / (3 * batch_size)


def default_eval_steps(steps, cost, points=200):
  """The default schedule (eval_points=0): `points` log-spaced steps, fewer where their evaluations would cost
  more than EVAL_FLOPS of the training FLOPs (at `cost` train steps each); 0 and the last step always."""
  budget = max(2, int(EVAL_FLOPS * steps / cost))
  while points > 1 and len(eval_steps(steps, points)) > budget:
    points -= 1
  return eval_steps(steps, points)


def eval_steps(steps, points, spacing="log"):
  """0, ~`points` log-spaced steps in [1, steps] (or `points` equal intervals), and the last step."""
  if spacing == "linear":
    return sorted({int(s) for s in np.round(np.linspace(0, steps, points + 1))})
  logs = np.round(np.logspace(0, math.log10(max(steps, 1)), points)).astype(int)
  return sorted({0, steps, *(int(s) for s in logs if s <= steps)})


def resolve(config):
  """Validates `config`, loads the data once and plans the cohorts; ConfigError before any work."""
  task = tasks.get(config.task)
  configs.check_common(config)
  if config.devices > jax.device_count():
    raise configs.ConfigError(f"devices={config.devices}: this machine has {jax.device_count()} "
                              f"{jax.devices()[0].platform} device(s); use devices=0 (all) or fewer")
  with foreign_task(config):
    task.check(config)
  for w in configs.split_tokens(config.group):
    if w not in task.words():
      raise configs.ConfigError(f"unknown group {w!r}; allowed: {', '.join(task.words())}")
  config = config.copy_and_resolve_references()
  if len(config.fracs) > 1 and not task.per_model_fraction:
    raise configs.ConfigError(f"fracs={tuple(config.fracs)}: {config.task}'s data fix the split; one fraction only")
  with foreign_task(config):
    data = task.load(config)
  if data.frac is not None or task.fixed_split:  # record the training share
    config.frac = data.frac if data.frac is not None else data.n_train / len(data.y)
  config.steps = float(config.steps or max(task.steps(at_frac(config, f)) for f in fracs_of(config)))
  config.weight_decays = tuple(config.weight_decays) or (config.weight_decay,)
  config.ranks, config.pcts = tuple(config.ranks), tuple(config.pcts)
  cohorts = plan_cohorts(config, task, data)
  if config.eval_points:
    points = eval_steps(int(config.steps), config.eval_points, config.eval_spacing)
  else:
    points = default_eval_steps(int(config.steps), eval_cost(len(data.y), config.batch_size))
  return Plan(task, ml_collections.FrozenConfigDict(config), data, tuple(cohorts), tuple(points))


@contextlib.contextmanager
def foreign_task(config):
  """A missing config field read by the task's hooks as a ConfigError: task= names a task whose fields the
  experiment file does not define (--config.task=mnist_wd on experiments/mod97.py)."""
  try:
    yield
  except AttributeError as e:
    raise configs.ConfigError(f"task={config.task!r} needs the config field {str(e).strip(chr(34))} that this "
                              f"experiment file does not define; use experiments/{config.task}.py") from None


def fracs_of(config):
  return tuple(config.fracs) or (config.frac,)


def at_frac(config, frac):
  c = config.copy_and_resolve_references()
  c.frac = frac
  return c


def factorised_shapes(task, config, data, model_words, max_ranks, factorisation="usv"):
  """The model's parameter tree with the `max_ranks` leaves factorised, as shapes (nothing is computed)."""
  model = task.model(config, model_words, data)
  x = task.prepare(jnp.asarray(data.x[:1]))
  return jax.eval_shape(lambda k: decompose.factorise(model.init(k, x)["params"], max_ranks, factorisation),
                        jax.random.PRNGKey(0))


def rank_specs(config):
  """The config's ranks (configs.Rank): absolute ones first, then percents."""
  return [configs.Rank("r", k) for k in config.ranks] + [configs.Rank("p", p) for p in config.pcts]


def layer_ranks(config, task, tree, groups):
  """([(rank, pct, {path: k})] per rank token, {path: largest k}) of the chosen layer groups in `tree`."""
  try:
    chosen = decompose.select(tree, task.patterns(groups))
  except decompose.DecomposeError as e:
    raise configs.ConfigError(str(e)) from None
  leaves = {decompose.path_str(p): l.shape for p, l in jax.tree_util.tree_flatten_with_path(tree)[0]}
  per_token, max_ranks, seen = [], {}, {}
  for rank in rank_specs(config):
    kind, value, label = rank.kind, rank.value, rank.label
    ranks = {}
    for path in chosen:
      k = value if kind == "r" else decompose.pct_to_rank(value, decompose.full_rank(leaves[path]))
      try:
        ranks[path] = decompose.check_rank(path, k, leaves[path])
      except decompose.DecomposeError as e:
        raise configs.ConfigError(f"{label}: {e}") from None
      max_ranks[path] = max(max_ranks.get(path, 0), k)
    same = seen.setdefault(tuple(sorted(ranks.items())), label)
    if same != label:
      raise configs.ConfigError(f"rank tokens {same!r} and {label!r} give the same ranks "
                                f"({', '.join(f'{decompose.layer_name(p)}: {k}' for p, k in ranks.items())}); give one")
    first = decompose.full_rank(leaves[next(iter(chosen))])
    pct = (int(value) if value == int(value) else value) if kind == "p" else round(100 * value / first, 2)
    per_token.append((rank, pct, ranks))
  return per_token, max_ranks


def remedy_grid(config, remedy):
  """The per-model hyperparameters of a remedy set's cohort: alpha x lambda (grokfast EMA), window x lambda
  (grokfast MA), else one empty set."""
  if remedy.has("grokfast_ema"):
    return [{"alpha": a, "lamb": l} for a in config.ema_alphas for l in config.ema_lambs]
  if remedy.has("grokfast_ma"):
    return [{"window": int(w), "lamb": l} for w in config.ma_windows for l in config.ma_lambs]
  return [{}]


def plan_cohorts(config, task, data):
  """A baseline cohort (unless baseline=false), one per factorisation of the chosen layer groups, and one per
  remedy set on the baseline model (and on the decomposed models with remedy_groups=true). Within a cohort, a
  model per rank token, remedy hyperparameters, weight decay, training fraction and seed, in that order."""
  words = tuple(configs.split_tokens(config.group))
  groups = tuple(w for w in words if w in task.groups and w != "none")
  model_words = tuple(w for w in words if w in task.model_words)
  specs = rank_specs(config)
  if specs and not groups:
    raise configs.ConfigError(f"ranks {', '.join(s.label for s in specs)} given but no layer group to decompose")
  if groups and not specs:
    raise configs.ConfigError(f"no ranks for group {config.group!r}: give rN or pX tokens")
  fracs = [(f, data.n_train if not task.per_model_fraction or f == config.frac else task.n_train(len(data.y), f))
           for f in fracs_of(config)]
  n = len(data.y)
  for f, n_tr in fracs:
    if not 0 < n_tr < n:
      raise configs.ConfigError(f"train fraction f{100 * f:g} ({f:g} of {n} examples) leaves {n_tr} to train on "
                                f"and {n - n_tr} to test on; each needs at least 1: use a fraction in "
                                f"f{100 / n:.3g}..f{100 * (n - 1) / n:.5g}")
  # kinds of model: (name, words, model words, factorisation, [(rank, pct, ranks)], max ranks)
  dense = ("baseline", (), (), "usv", [(configs.FULL, None, {})], {})
  kinds = []
  if groups:
    per_token, max_ranks = layer_ranks(config, task, factorised_shapes(task, config, data, model_words, {}), groups)
    for form in config.factorisations or ("usv",):
      name = ",".join(words) + ("" if form == "usv" else f"[{form}]")
      kinds.append((name, words, model_words, form, per_token, max_ranks))
  elif model_words:
    kinds.append((",".join(words), words, model_words, "usv", [(configs.FULL, None, {})], {}))
  plain = [dense] if config.baseline or not (kinds or config.remedies) else []
  arms = [(kind, configs.NO_REMEDY) for kind in plain + kinds]
  arms += [(kind, configs.Remedy.parse(r)) for r in config.remedies for kind in [dense] + kinds * config.remedy_groups]
  cohorts, n = [], 0
  for (name, kind_words, kind_model_words, form, per_token, max_ranks), remedy in arms:
    shapes = factorised_shapes(task, config, data, kind_model_words, max_ranks, form)
    wds = config.decays if remedy.has("decay", "adam_l2") else config.weight_decays
    counts = {rank: decompose.count_params(shapes, ranks, form)[1] for rank, _, ranks in per_token}
    models = tuple(ModelSpec(s, rank, pct, ranks, wd, counts[rank], f, n_tr, hp)
                   for rank, pct, ranks in per_token for hp in remedy_grid(config, remedy) for wd in wds
                   for f, n_tr in fracs for s in range(config.seed, config.seed + config.seeds))
    cohort_name = name if remedy == configs.NO_REMEDY else f"{name}+{remedy.label}"
    cohorts.append(Cohort(cohort_name, kind_words, kind_model_words, max_ranks, models, n, form, remedy))
    n += len(models)
  return cohorts
