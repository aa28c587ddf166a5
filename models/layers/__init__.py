"""Keras layers of the DSMOE models, one concept per file."""

from models.layers.domain_specific_batch_normalization import DomainSpecificBatchNormalization
from models.layers.feature_embedding import BehaviorSequenceEmbedding
from models.layers.feature_embedding import FeatureEmbedding
from models.layers.feature_embedding import ScenarioEmbedding
from models.layers.masked_pooling import MaskedPooling
from models.layers.sap_mixture_of_experts import SAPMixtureOfExperts
from models.layers.sap_mixture_of_experts import ScenarioAdaptiveExpert
from models.layers.scenario_adaptive_projection import ScenarioAdaptiveProjection
from models.layers.scenario_popularity_prior import ScenarioPopularityPrior
from models.layers.scenario_specific_dense import ScenarioSpecificDense
