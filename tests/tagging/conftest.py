import pytest

from tagging.models import Dimension, Tag, TagGroup


@pytest.fixture
def group(corp):
    return TagGroup.objects.create(corp=corp, dimension=Dimension.BUSINESS, name="偏好")


@pytest.fixture
def tags_abc(group):
    return {name: Tag.objects.create(group=group, name=f"标签{name}") for name in "ABC"}
