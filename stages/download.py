"""DVC stage download: find (mirror, system folder) or download the datasets; verify their checksums."""

from oddpix.stage import stage_main

if __name__ == "__main__":
    stage_main("download")
