"""Interaction-aware teachers for distillation. Add a teacher: subclass RankingTeacher and
register it in models/build.py's TEACHERS."""

from models.teachers.base import RankingTeacher
from models.teachers.dcn_v2 import DCNv2Teacher
