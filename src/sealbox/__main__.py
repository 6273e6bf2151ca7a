from sealbox.cli.main import main

main()
