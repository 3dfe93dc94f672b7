"""Which models a config asks for, grouped into cohorts: models sharing one parameter-tree structure (every
`ffn` model of any rank and seed, say), with per-model seeds, layer ranks and weight decays. Pure planning from
the config and the model's parameter shapes; nothing is trained here.
"""
import dataclasses

import jax
import jax.numpy as jnp

from dlgrok import configs, decompose, tasks


@dataclasses.dataclass
class ModelSpec:
  seed: int
  rank: str  # rank token ('r32', 'p50') or 'full' for a dense model
  pct: float | None  # rank as a percent of the first factorised layer's full rank
  layer_ranks: dict  # leaf path -> k
  weight_decay: float = 0.0


@dataclasses.dataclass
class Cohort:
  name: str
  words: tuple  # layer-group and variant words; () for the baseline
  max_ranks: dict  # leaf path -> r, the largest rank in the cohort
  models: list
  first: int = 0  # global index of the first model


def steps_of(config, task):
  if config.steps:
    return int(config.steps)
  if task.default_steps:
    return int(task.default_steps(config))
  if config.frac not in task.steps_by_frac:
    allowed = ", ".join(f"{f:g}" for f in task.steps_by_frac)
    raise configs.ConfigError(f"no paper step count for frac={config.frac:g} (known: {allowed}); pass steps=N")
  return int(task.steps_by_frac[config.frac])


def resolve(config):
  """Validates `config` and fills defaults; returns (task, config). Raises ConfigError before any work."""
  task = tasks.get(config.task)
  configs.check_common(config)
  task.check(config)
  for w in configs.split_tokens(config.group):
    if w not in task.words():
      raise configs.ConfigError(f"unknown group {w!r}; allowed: {', '.join(task.words())}")
  config = config.copy_and_resolve_references()
  config.steps = float(steps_of(config, task))
  if task.fixed_split:  # record the training share
    data = task.data(config)
    config.frac = data.frac if data.frac is not None else data.n_train / len(data.y)
  plan(config, task)  # checks ranks against the layers' shapes
  return task, config


def layer_name(path):
  return path.rsplit("/", 1)[0]


def shapes(task, config, variants):
  model = task.model(config, variants)
  x = tasks.example(task, jnp.asarray(task.data(config).x[:1]))
  return jax.eval_shape(lambda k: model.init(k, x)["params"], jax.random.PRNGKey(0))


def plan(config, task):
  """The run's cohorts: a baseline (unless baseline=false) and one for the chosen layer groups."""
  words = tuple(configs.split_tokens(config.group))
  groups = tuple(w for w in words if w in task.groups and w != "none")
  variants = tuple(w for w in words if w in task.variants)
  tokens = configs.split_tokens(config.ranks)
  if tokens and not groups:
    raise configs.ConfigError(f"ranks={config.ranks!r} given but no layer group to decompose")
  seeds = [config.seed + i for i in range(config.seeds)]
  wds = configs.weight_decays(config)
  dense = [ModelSpec(s, "full", None, {}, wd) for wd in wds for s in seeds]
  cohorts = []
  if config.baseline or not (groups or variants):
    cohorts.append(Cohort("baseline", (), {}, list(dense)))
  if groups or variants:
    specs, max_ranks = dense, {}
    if groups:
      tree = shapes(task, config, variants)
      try:
        chosen = decompose.select(tree, task.patterns(groups))
      except decompose.DecomposeError as e:
        raise configs.ConfigError(str(e)) from None
      leaves = {decompose.path_str(p): l.shape for p, l in jax.tree_util.tree_flatten_with_path(tree)[0]}
      specs, seen = [], {}
      for tok in tokens or task.default_ranks(groups):
        kind, val = configs.parse_rank_token(tok)
        ranks = {}
        for path in chosen:
          full = decompose.full_rank(leaves[path])
          k = val if kind == "r" else decompose.pct_to_rank(val, full)
          try:
            ranks[path] = decompose.check_rank(path, k, leaves[path])
          except decompose.DecomposeError as e:
            raise configs.ConfigError(f"{tok}: {e}") from None
          max_ranks[path] = max(max_ranks.get(path, 0), k)
        same = seen.setdefault(tuple(sorted(ranks.items())), tok)
        if same != tok:
          raise configs.ConfigError(f"rank tokens {same!r} and {tok!r} give the same ranks "
                                    f"({', '.join(f'{layer_name(p)}: {k}' for p, k in ranks.items())}); give one")
        first = next(iter(chosen))
        pct = val if kind == "p" else round(100 * val / decompose.full_rank(leaves[first]), 2)
        specs += [ModelSpec(s, tok, pct, ranks, wd) for wd in wds for s in seeds]
    cohorts.append(Cohort(",".join(words), words, max_ranks, specs))
  n = 0
  for c in cohorts:
    c.first, n = n, n + len(c.models)
  return cohorts
