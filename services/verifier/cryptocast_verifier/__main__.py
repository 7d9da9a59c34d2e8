from cryptocast_verifier.main import main

main()
