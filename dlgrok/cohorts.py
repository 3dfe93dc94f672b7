"""The plan of a run, made once from its config: the task, the resolved config, the data, and the cohorts of
models (models sharing one parameter-tree structure, e.g. every `ffn` model of any rank and seed) with their
per-model seeds, integer layer ranks, weight decays and parameter counts. Nothing is trained here.
"""
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
  rank: str  # 'r32', 'p50', or 'full' for a dense model
  pct: float | None  # rank as a percent of the first factorised layer's full rank
  layer_ranks: dict  # leaf path -> k
  weight_decay: float
  counts: dict  # whole-model {'trained', 'inference', 'dense'} parameter counts


@dataclasses.dataclass(frozen=True)
class Cohort:
  name: str
  words: tuple  # layer-group and variant words; () for the baseline
  variants: tuple  # the words that change the model itself
  max_ranks: dict  # leaf path -> r, the largest rank in the cohort
  models: tuple
  first: int  # global index of the first model


@dataclasses.dataclass(frozen=True)
class Plan:
  task: tasks.Task
  config: ml_collections.FrozenConfigDict  # resolved: steps, frac and weight_decays filled in
  data: tasks.Data
  cohorts: tuple
  eval_steps: tuple  # the evaluation points, 0 and the last step included

  @property
  def steps(self):
    return int(self.config.steps)

  @property
  def n_models(self):
    return sum(len(c.models) for c in self.cohorts)


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
  task.check(config)
  for w in configs.split_tokens(config.group):
    if w not in task.words():
      raise configs.ConfigError(f"unknown group {w!r}; allowed: {', '.join(task.words())}")
  config = config.copy_and_resolve_references()
  data = task.load(config)
  if data.frac is not None or task.split is tasks.common.fixed_split:  # record the training share
    config.frac = data.frac if data.frac is not None else data.n_train / len(data.y)
  config.steps = float(config.steps or task.steps(config))
  config.weight_decays = tuple(config.weight_decays) or (config.weight_decay,)
  config.ranks, config.pcts = tuple(config.ranks), tuple(config.pcts)
  cohorts = plan_cohorts(config, task, data)
  points = eval_steps(int(config.steps), config.eval_points, config.eval_spacing)
  return Plan(task, ml_collections.FrozenConfigDict(config), data, tuple(cohorts), tuple(points))


def factorised_shapes(task, config, data, variants, max_ranks):
  """The model's parameter tree with the `max_ranks` leaves factorised, as shapes (nothing is computed)."""
  model = task.model(config, variants)
  x = task.prepare(jnp.asarray(data.x[:1]))
  return jax.eval_shape(lambda k: decompose.factorise(model.init(k, x)["params"], max_ranks),
                        jax.random.PRNGKey(0))


def rank_specs(config):
  """[(label, kind, value)] of the config's ranks: absolute ones first, then percents."""
  return ([(configs.rank_label("r", k), "r", k) for k in config.ranks]
          + [(configs.rank_label("p", p), "p", p) for p in config.pcts])


def plan_cohorts(config, task, data):
  """A baseline cohort (unless baseline=false) and one for the chosen layer groups."""
  words = tuple(configs.split_tokens(config.group))
  groups = tuple(w for w in words if w in task.groups and w != "none")
  variants = tuple(w for w in words if w in task.variants)
  specs = rank_specs(config)
  if specs and not groups:
    raise configs.ConfigError(f"ranks {', '.join(s[0] for s in specs)} given but no layer group to decompose")
  if groups and not specs:
    raise configs.ConfigError(f"no ranks for group {config.group!r}: give rN or pX tokens")
  seeds = [config.seed + i for i in range(config.seeds)]
  wds = config.weight_decays
  dense_counts = decompose.count_params(factorised_shapes(task, config, data, variants, {}))[1]
  dense = [ModelSpec(s, "full", None, {}, wd, dense_counts) for wd in wds for s in seeds]
  out = []
  if config.baseline or not (groups or variants):
    base_counts = dense_counts if not variants else decompose.count_params(
        factorised_shapes(task, config, data, (), {}))[1]
    out.append(("baseline", (), (), {}, [dataclasses.replace(m, counts=base_counts) for m in dense]))
  if groups or variants:
    models, max_ranks = dense, {}
    if groups:
      tree = factorised_shapes(task, config, data, variants, {})
      try:
        chosen = decompose.select(tree, task.patterns(groups))
      except decompose.DecomposeError as e:
        raise configs.ConfigError(str(e)) from None
      leaves = {decompose.path_str(p): l.shape for p, l in jax.tree_util.tree_flatten_with_path(tree)[0]}
      per_token, seen = [], {}
      for label, kind, value in specs:
        ranks = {}
        for path in chosen:
          full = decompose.full_rank(leaves[path])
          k = value if kind == "r" else decompose.pct_to_rank(value, full)
          try:
            ranks[path] = decompose.check_rank(path, k, leaves[path])
          except decompose.DecomposeError as e:
            raise configs.ConfigError(f"{label}: {e}") from None
          max_ranks[path] = max(max_ranks.get(path, 0), k)
        same = seen.setdefault(tuple(sorted(ranks.items())), label)
        if same != label:
          raise configs.ConfigError(f"rank tokens {same!r} and {label!r} give the same ranks "
                                    f"({', '.join(f'{decompose.layer_name(p)}: {k}' for p, k in ranks.items())}); "
                                    "give one")
        first = decompose.full_rank(leaves[next(iter(chosen))])
        pct = (int(value) if value == int(value) else value) if kind == "p" else round(100 * value / first, 2)
        per_token.append((label, pct, ranks))
      shapes = factorised_shapes(task, config, data, variants, max_ranks)
      models = [ModelSpec(s, label, pct, ranks, wd, decompose.count_params(shapes, ranks)[1])
                for label, pct, ranks in per_token for wd in wds for s in seeds]
    out.append((",".join(words), words, variants, max_ranks, models))
  cohorts, n = [], 0
  for name, words_, variants_, max_ranks_, models in out:
    cohorts.append(Cohort(name, words_, variants_, max_ranks_, tuple(models), n))
    n += len(models)
  return cohorts
