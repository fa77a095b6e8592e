"""factory_boy factories for the annotation data model."""

import factory
from django.contrib.auth import get_user_model

from annotation.models import Candidate, Comparison, Membership, Project, Prompt, Role


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    schema = factory.LazyFunction(
        lambda: {
            "arity": 2,
            "allow_tie": True,
            "strength": {"min": 0, "max": 3},
            "criteria": [{"key": "helpful", "label": "Helpfulness", "min": 1, "max": 5}],
            "span_categories": [
                {"key": "incorrect", "label": "Incorrect", "color": "#d62728"},
                {"key": "irrelevant", "label": "Irrelevant", "color": "#1f77b4"},
            ],
            "rationale": "optional",
        }
    )


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.ANNOTATOR


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    project = factory.SubFactory(ProjectFactory)
    external_id = factory.Sequence(lambda n: f"p{n}")
    text = factory.Sequence(lambda n: f"Question number {n}?")


class CandidateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Candidate

    prompt = factory.SubFactory(PromptFactory)
    project = factory.SelfAttribute("prompt.project")
    external_id = factory.Sequence(lambda n: f"c{n}")
    text = factory.Sequence(lambda n: f"Answer number {n}.")


def make_comparison(project, *, arity=2, wanted=None, priority=0, is_gold=False, gold_answer=None, texts=None):
    """A prompt with ``arity`` fresh candidates and one comparison over them."""
    prompt = PromptFactory(project=project)
    texts = texts or [f"Answer {i} to {prompt.external_id}." for i in range(arity)]
    candidates = [CandidateFactory(prompt=prompt, text=t) for t in texts]
    comparison = Comparison.objects.create(
        project=project,
        prompt=prompt,
        external_id=f"cmp-{prompt.external_id}",
        candidate_ids=[c.pk for c in candidates],
        priority=priority,
        wanted=wanted if wanted is not None else project.overlap,
        is_gold=is_gold,
        gold_answer=gold_answer,
    )
    return comparison
