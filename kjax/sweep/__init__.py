r"""Many runs: a sweep (ablation study) as data in the config, trained group by group.

``config.sweep`` lists values to vary, combined as a grid::

  config.sweep.beta = (0.5, 1.0, 2.0, 4.0, 8.0)   # objective.beta
  config.sweep.latent_dim = (2, 10)               # model.latent_dim
  config.sweep.seed = (0, 1, 2)                   # seed
  config.sweep.max_runs = 64                      # refuse larger grids
  config.sweep.sharing = "auto"                   # how a group's runs share a program
  config.sweep.shard = ""                         # 'i/n': only the i-th of n parts
  config.sweep.executor = "local"                 # or 'ray': the parts as Ray tasks
  config.sweep.parts = 0                          # parts for 'ray'; 0: one per program

An entry is named by the last part of the config key it varies when that is unique
(``beta`` → ``objective.beta``); otherwise by its trailing parts joined with ``__``
(``objective__name``). Override on the command line with tuples, e.g.
``--config.sweep.beta='(1.0,4.0)'``.

Runs whose settings leave every array shape and the step's code unchanged
(``kjax.tasks.stackable_keys``:
seeds and the hyper-parameters a state carries as arrays) form one group, trained by one
compiled program (``kjax.train.train_runs``); other settings (latent_dim, architecture,
loss, likelihood, data) split groups that run one after another. Each run lives in
``WORKDIR/runs/<name>/`` with the whole workdir contract of a single run; finished runs are
reused, so a killed sweep resumes and a sweep extended with more values trains only the new
runs. ``kjax.results`` then writes ``results.csv``, ``results.md``, figures and
``report.html``.

Many machines: the runs are split into n disjoint parts by their place in the grid
(``shard_runs``: run j belongs to part ``j mod n``; a run is identified by its name, derived
from its settings). ``--config.sweep.shard='i/n'`` trains part i alone into the shared
workdir, so a SLURM job array, a Kubernetes indexed job or any scheduler runs a study; a part
that dies is re-submitted and resumes; ``--mode=results`` merges the finished runs.
``config.sweep.executor='ray'`` submits the parts as Ray tasks to the cluster ``ray.init()``
joins (``RAY_ADDRESS``, or a local one), then writes the results.
"""

from kjax import errors  # noqa: F401  (kjax.sweep.errors, as before the package)
from kjax.sweep.grid import (DIVERGED, EXECUTORS, RUNS_DIR, SETTINGS, SHARING, Run, axes,
                             default_sharing, expand, group_key, groups, is_sweep, parse_shard,
                             resolve_axis, run_name, shard_runs)
from kjax.sweep.run import (evaluate_sweep, rebuild_results, run_on_ray, run_sweep,
                            write_results)

__all__ = ["DIVERGED", "EXECUTORS", "RUNS_DIR", "SETTINGS", "SHARING", "Run", "axes",
           "default_sharing", "evaluate_sweep", "expand", "group_key", "groups", "is_sweep",
           "parse_shard", "rebuild_results", "resolve_axis", "run_name", "run_on_ray",
           "run_sweep", "shard_runs", "write_results"]
