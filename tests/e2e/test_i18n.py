"""Error messages in zh, en, ru; English fallback; the code never changes."""
import json
import os

from e2e_util import assert_error, has_cjk, has_cyrillic, make_iccid, make_key


def _messages(server, do):
    out = {}
    for lang in ("zh", "en", "ru", "fr", None):
        r = do(lang)
        out[lang] = r
    codes = {r.body["error"]["code"] for r in out.values()}
    assert len(codes) == 1, codes
    statuses = {r.status for r in out.values()}
    assert len(statuses) == 1, statuses
    params = {r.body["error"].get("param") for r in out.values()}
    assert len(params) == 1, params
    return {k: r.body["error"]["message"] for k, r in out.items()}


def _check(msgs):
    zh, en, ru = msgs["zh"], msgs["en"], msgs["ru"]
    assert len({zh, en, ru}) == 3, msgs
    assert has_cjk(zh), zh
    assert has_cyrillic(ru), ru
    assert not has_cjk(en) and not has_cyrillic(en), en
    assert msgs["fr"] == en, "fr should fall back to English: %r" % (msgs,)
    assert msgs[None] == en, "no Accept-Language should be English: %r" % (msgs,)


def test_sim_not_found_in_three_languages(server):
    unknown = make_iccid()
    msgs = _messages(server, lambda lang: server.request("GET", "/v1/sims/" + unknown, lang=lang))
    _check(msgs)


def test_topup_errors_in_three_languages(server):
    iccid = server.new_sim()
    msgs = _messages(server, lambda lang: server.topup(iccid, 99, lang=lang))
    _check(msgs)
    assert_error(server.topup(iccid, 99, lang="ru"), 400, "amount_too_small", param="amount")
    msgs = _messages(server, lambda lang: server.request("POST", "/v1/sims/%s/topups" % iccid, b"{oops",
                                                         idem=make_key(), lang=lang))
    _check(msgs)
    msgs = _messages(server, lambda lang: server.topup(iccid, 1000, currency="USD", lang=lang))
    _check(msgs)
    assert server.snapshot(iccid) == ("inactive", 0, 0)


def test_auth_errors_in_three_languages(server):
    msgs = _messages(server, lambda lang: server.request("GET", "/v1/ledger/check", token=None, lang=lang))
    _check(msgs)
    msgs = _messages(server, lambda lang: server.request("GET", "/v1/ledger/check", token="operator", lang=lang))
    _check(msgs)


def test_accept_language_with_regions_and_weights(server):
    unknown = make_iccid()

    def msg(lang):
        r = server.request("GET", "/v1/sims/" + unknown, lang=lang)
        assert_error(r, 404, "sim_not_found")
        return r.body["error"]["message"]

    zh, en, ru = msg("zh"), msg("en"), msg("ru")
    assert msg("zh-CN") == zh
    assert msg("ru-RU,ru;q=0.9,en;q=0.8") == ru
    assert msg("en-GB") == en
    assert msg("fr-FR, de;q=0.5") == en


def test_accept_language_quality_values(server):
    unknown = make_iccid()

    def msg(lang):
        r = server.request("GET", "/v1/sims/" + unknown, lang=lang)
        assert_error(r, 404, "sim_not_found")
        return r.body["error"]["message"]

    ru, en = msg("ru"), msg("en")
    assert msg("en;q=0.1, ru;q=0.9") == ru
    assert msg("de, ru;q=0.5, en;q=0.4") == ru


def test_every_catalogue_has_every_message():
    """web/i18n: zh and ru have every key en has, and no other; each text is
    non-empty, and every key other than names of brands is translated."""
    root = os.path.join(os.path.dirname(__file__), "..", "..", "web", "i18n")
    cats = {lang: json.load(open(os.path.join(root, lang + ".json"), encoding="utf-8")) for lang in ("en", "zh", "ru")}
    assert set(cats["zh"]) == set(cats["en"]) == set(cats["ru"]), \
        (set(cats["en"]) ^ set(cats["zh"]), set(cats["en"]) ^ set(cats["ru"]))
    for key, en in cats["en"].items():
        assert en.strip() and cats["zh"][key].strip() and cats["ru"][key].strip(), key
        assert has_cjk(cats["zh"][key]), key
        if key not in ("method.alipay", "method.wechat"):   # brands keep their Latin names in Russian
            assert has_cyrillic(cats["ru"][key]), key
