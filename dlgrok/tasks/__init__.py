"""Task families, one module each; `get(config.task)` picks one from this explicit table."""
from dlgrok import configs
from dlgrok.tasks import cifar10, mnist, modp, shakespeare
from dlgrok.tasks.common import Data, Task  # noqa: F401

# config.task -> family (mod97 and mod59 differ only in the config's numbers, as mnist_grok and mnist_wd do)
TASKS = {"mod97": modp.TASK, "mod59": modp.TASK, "mnist_grok": mnist.TASK, "mnist_wd": mnist.TASK,
         "shakespeare": shakespeare.TASK, "cifar10": cifar10.TASK}


def get(name):
  if name not in TASKS:
    raise configs.ConfigError(f"unknown task {name!r}; allowed: {', '.join(TASKS)}")
  return TASKS[name]
