"""Keras layers of the rankers (MDL, MTmixAtt, their RankMixer backbone), one concept per
file."""

from models.rankers.layers.auto_token import AutoToken
from models.rankers.layers.domain_aware_attention import DomainAwareAttention
from models.rankers.layers.domain_fused_module import DomainFusedModule
from models.rankers.layers.feature_tokenizer import FeatureTokenizer
from models.rankers.layers.ffn_experts import FFNExperts
from models.rankers.layers.mdl_block import MDLBlock
from models.rankers.layers.mtmixatt_block import MTmixAttBlock
from models.rankers.layers.per_token_dense import PerTokenDense
from models.rankers.layers.per_token_ffn import PerTokenFFN
from models.rankers.layers.rankmixer_block import RankMixerBlock
from models.rankers.layers.target_attention import TargetAttention
from models.rankers.layers.token_mixing import TokenMixing
