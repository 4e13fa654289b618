"""Platform-aware defaults (placeholder)."""


def steps_per_call(config, platform):
  v = config.train.steps_per_call
  return 1 if v == "auto" else int(v)
