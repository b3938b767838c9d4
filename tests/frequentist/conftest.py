import pytest
from frequentist.reference import build_reference


@pytest.fixture(scope="session")
def reference():
    """Every frequentist method fitted once to the padded batch of test panels."""
    return build_reference()
