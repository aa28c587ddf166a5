"""The ranking stage: multi-scenario, multi-task rankers (MDL, MTmixAtt) on a RankMixer
backbone. Their Keras layers are in models/rankers/layers/, one concept per file."""
