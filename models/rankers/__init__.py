"""The ranking stage: multi-scenario, multi-task rankers (MDL, MTmixAtt) on a RankMixer
backbone, and the MDL paper's baselines. Their Keras layers are in
models/rankers/layers/, one concept per file; models/build.py's RANKERS names them.

    base.py           MultiTaskRanker: logits [B, T], the shared field encoding and
                      semantic feature groups, per-task towers, loss and metrics
    shared_bottom.py  SharedBottomRanker
    mmoe.py           MMoERanker
    rankmixer.py      RankMixerRanker
    mdl.py            MDLRanker (and its ablations)
    mtmixatt.py       MTmixAttRanker
    teacher.py        RankerTeacher: a ranker's click logit as a distillation teacher
"""
