# The AWS emulator for tests (test/aws): moto server plus our extension, in a cached venv.
.PHONY: aws-venv moto-up

aws-venv:  ## the moto venv for the AWS tests
	bash test/support/venv.sh test/aws/requirements.txt

# Integration tests start the emulator from this venv.
test-integration: aws-venv

# A long-running emulator for manual poking: `make moto-up`, then AWS_ENDPOINT_URL=http://127.0.0.1:5055.
moto-up: aws-venv  ## a long-running AWS emulator on :5055
	PYTHONPATH=test/aws $$(bash test/support/venv.sh test/aws/requirements.txt --python) -m drawbridge_moto --port 5055
