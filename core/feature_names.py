"""The tf.Example contract: canonical feature names of events, items and users.

The ingestion writes events, the item corpus and the user snapshot with these names for the
log columns and the derived features, and each user or item feature under its dataset-spec
`name`; tf.Transform, the models, evaluation and serving read them.
"""

USER_ID = 'user_id'
ITEM_ID = 'item_id'
SCENARIO = 'scenario'  # the raw scenario value, as in the logs
LABEL = 'label'  # int64, 1 = positive (click)
TIMESTAMP = 'timestamp'  # int64, milliseconds since the Unix epoch
# The raw item id of a transformed example (ITEM_ID is the vocabulary id there): only the
# Trainer's point-in-time negatives read it (models/item_clicks.py).
RAW_ITEM_ID = 'raw_item_id'
HISTORY_ITEM_ID = 'history_item_id'  # the user's last clicked items, oldest first
HISTORY_SCENARIO = 'history_scenario'  # raw scenario value of each history click
# Item features derived from the log (beyond the DSMOE paper; each behind an ingestion
# flag): the item's clicks in each served scenario strictly before the example's moment...
SCENARIO_CLICKS = 'scenario_clicks'
# ...and the same clicks exponentially decayed (recent popularity), as of the example.
SCENARIO_RECENT_CLICKS = 'scenario_recent_clicks'
POPULARITY_FEATURES = (SCENARIO_CLICKS, SCENARIO_RECENT_CLICKS)
# The item's outcomes strictly before the example's moment, over every scenario (beyond
# the papers; for the rankers, behind an ingestion flag): [exposures, positives of each
# ranking task of the spec, in its order], so a ranker can read the item's rate of each
# task as of the example (its own exposure never counts).
ITEM_OUTCOMES = 'item_outcomes'

# The ranking tasks of the dataset spec (logs.tasks): int64 0/1 on every exposure, named
# task_<task name> (task_click, task_long_view, ...).
TASK_PREFIX = 'task_'


def task_label(task: str) -> str:
  """The tf.Example name of a ranking task's label."""
  return TASK_PREFIX + task


# A user or item feature of the dataset spec may not take one of these names.
RESERVED = (USER_ID, ITEM_ID, SCENARIO, LABEL, TIMESTAMP, RAW_ITEM_ID, HISTORY_ITEM_ID,
            HISTORY_SCENARIO, ITEM_OUTCOMES) + POPULARITY_FEATURES  # and no name starts with TASK_PREFIX
