import pytest
from django.db import DEFAULT_DB_ALIAS, connections
from rest_framework.test import APIClient

from annotation.models import Role

from .factories import MembershipFactory, ProjectFactory, UserFactory


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The default hasher costs ~0.3 s per user on this machine; tests create hundreds.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def project(db):
    return ProjectFactory()


def _member(project, role, name):
    user = UserFactory(username=name)
    MembershipFactory(project=project, user=user, role=role)
    return user


@pytest.fixture
def annotator(project):
    return _member(project, Role.ANNOTATOR, "anna")


@pytest.fixture
def researcher(project):
    return _member(project, Role.RESEARCHER, "rita")


@pytest.fixture
def admin(project):
    return _member(project, Role.ADMIN, "adam")


@pytest.fixture
def outsider(db):
    return UserFactory(username="otto")


@pytest.fixture
def api():
    """An API client; ``api.as_user(user)`` authenticates it as that user."""
    client = APIClient()

    def as_user(user):
        client.force_authenticate(user=user)
        return client

    client.as_user = as_user
    return client


@pytest.fixture
def other():
    """A second connection, in a transaction the test commits when it chooses."""
    conn = connections.create_connection(DEFAULT_DB_ALIAS)
    conn.set_autocommit(False)
    yield conn
    conn.rollback()
    conn.close()
