"""The gpu_driver filters: apt components added the right way, the reboot decision."""

from gpu_driver import (
    apt_sources_add_components,
    apt_sources_uris,
    deb822_add_components,
    gpu_driver_reboot_reasons,
)

WANTED = ["contrib", "non-free", "non-free-firmware"]
BOOKWORM = ["bookworm", "bookworm-updates", "bookworm-security"]
TRIXIE = ["trixie", "trixie-updates", "trixie-security"]

SOURCES_LIST = """\
# deb cdrom:[Debian GNU/Linux 12]/ bookworm main
deb http://mirror.example.org/debian bookworm main
deb-src http://mirror.example.org/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://security.example.org/debian-security bookworm-security main # security
deb http://mirror.example.org/debian bookworm-updates main contrib
deb http://mirror.example.org/debian bookworm-backports main
deb https://download.docker.com/linux/debian bookworm stable
"""


def test_one_line_entries_get_the_missing_components_and_keep_their_mirror():
    out = apt_sources_add_components(SOURCES_LIST, WANTED, BOOKWORM).splitlines()
    assert out[0] == "# deb cdrom:[Debian GNU/Linux 12]/ bookworm main"
    assert out[1] == "deb http://mirror.example.org/debian bookworm main contrib non-free non-free-firmware"
    assert (
        out[2] == "deb-src http://mirror.example.org/debian bookworm main contrib non-free non-free-firmware"
    )
    assert out[3] == (
        "deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
        "http://security.example.org/debian-security bookworm-security main contrib non-free non-free-firmware # security"
    )
    assert (
        out[4]
        == "deb http://mirror.example.org/debian bookworm-updates main contrib non-free non-free-firmware"
    )


def test_one_line_entries_of_other_suites_and_repositories_stay():
    out = apt_sources_add_components(SOURCES_LIST, WANTED, BOOKWORM).splitlines()
    assert out[5] == "deb http://mirror.example.org/debian bookworm-backports main"
    assert out[6] == "deb https://download.docker.com/linux/debian bookworm stable"


def test_one_line_sources_already_right_are_unchanged():
    once = apt_sources_add_components(SOURCES_LIST, WANTED, BOOKWORM)
    assert apt_sources_add_components(once, WANTED, BOOKWORM) == once


DEBIAN_SOURCES = """\
Types: deb deb-src
URIs: http://mirror.example.org/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example.org/debian-security
Suites: trixie-security
Components: main non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

# A disabled entry stays as it is.
Types: deb
URIs: http://mirror.example.org/debian
Suites: trixie-proposed-updates
Components: main
Enabled: no
"""


def test_deb822_stanzas_get_the_missing_components():
    out = deb822_add_components(DEBIAN_SOURCES, WANTED, TRIXIE)
    stanzas = out.split("\n\n")
    assert "Components: main contrib non-free non-free-firmware" in stanzas[0].splitlines()
    assert "URIs: http://mirror.example.org/debian" in stanzas[0].splitlines()
    assert "Components: main non-free-firmware contrib non-free" in stanzas[1].splitlines()
    assert "Components: main" in stanzas[2].splitlines()
    assert out.endswith("Enabled: no\n")


def test_deb822_sources_already_right_are_unchanged():
    once = deb822_add_components(DEBIAN_SOURCES, WANTED, TRIXIE)
    assert deb822_add_components(once, WANTED, TRIXIE) == once


def test_deb822_of_another_release_is_unchanged():
    assert deb822_add_components(DEBIAN_SOURCES, WANTED, BOOKWORM) == DEBIAN_SOURCES


def test_uris_of_main_entries_are_found_in_both_formats():
    assert apt_sources_uris(SOURCES_LIST, BOOKWORM) == [
        "http://mirror.example.org/debian",
        "http://security.example.org/debian-security",
    ]
    assert apt_sources_uris(DEBIAN_SOURCES, TRIXIE) == [
        "http://mirror.example.org/debian",
        "http://security.example.org/debian-security",
    ]
    assert apt_sources_uris(DEBIAN_SOURCES, BOOKWORM) == []


def test_no_reboot_without_a_gpu_or_a_loaded_module():
    state = {"vendor": "nvidia", "module_status": "headers-missing", "gpu_present": False}
    assert gpu_driver_reboot_reasons(state) == []


def test_reboot_when_nouveau_is_still_loaded():
    state = {"vendor": "nvidia", "nouveau_loaded": True, "module_status": "built", "gpu_present": True}
    assert gpu_driver_reboot_reasons(state) == [
        "the nouveau module is still loaded; the blacklist takes effect at the next boot"
    ]


def test_reboot_when_the_loaded_module_is_older_than_the_installed_one():
    state = {
        "vendor": "nvidia",
        "loaded_version": "535.183.01",
        "installed_version": "535.261.03",
        "module_status": "built",
        "gpu_present": True,
    }
    assert gpu_driver_reboot_reasons(state) == [
        "the loaded nvidia module is version 535.183.01, the installed one is 535.261.03"
    ]


def test_no_reboot_when_the_loaded_module_is_the_installed_one():
    state = {
        "vendor": "nvidia",
        "loaded_version": "535.261.03",
        "installed_version": "535.261.03-1",
        "module_status": "built",
        "gpu_present": True,
    }
    assert gpu_driver_reboot_reasons(state) == []


def test_reboot_when_a_gpu_waits_for_a_built_module():
    state = {"vendor": "amd", "loaded": False, "module_status": "in-kernel", "gpu_present": True}
    assert gpu_driver_reboot_reasons(state) == [
        "a GPU is present and the amdgpu module is installed but not loaded"
    ]


def test_no_reboot_when_the_module_could_not_be_built():
    state = {"vendor": "nvidia", "module_status": "headers-missing", "gpu_present": True}
    assert gpu_driver_reboot_reasons(state) == []
