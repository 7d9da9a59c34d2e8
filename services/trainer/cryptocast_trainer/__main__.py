from cryptocast_trainer.main import main

main()
