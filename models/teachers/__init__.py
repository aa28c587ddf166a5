"""Interaction-aware teachers for distillation. Add a teacher: subclass RankingTeacher and
register it in TEACHERS (and in pipeline/configs.py's TEACHERS)."""

from models.teachers.base import RankingTeacher
from models.teachers.dcn_v2 import DCNv2Teacher

TEACHERS = {'dcn_v2': DCNv2Teacher}
