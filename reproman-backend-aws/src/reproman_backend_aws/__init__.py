"""ReproMan backend: AWS EC2 instances on boto3."""

__version__ = "0.5.0"
