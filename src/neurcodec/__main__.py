from neurcodec.cli import main

main()
