from cryptocast_common.runtime import run_service
from cryptocast_trainer.bootstrap import bootstrap


def main() -> None:
    run_service(bootstrap)


if __name__ == "__main__":
    main()
