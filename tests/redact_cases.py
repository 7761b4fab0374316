"""Positive and negative redaction cases, written for these tests (no key here is real).

POSITIVE: (type, document, the value that must be gone); PLUGIN_ONLY, the secrets among them that only
detect-secrets' plugins find (redact's own patterns miss them). NEGATIVE: (type, document) that must come out
unchanged. Shared by the stage test (precision/recall per type) and the pipeline test (no original in
any output byte).
"""

from __future__ import annotations

PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
       "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----")

POSITIVE = [
    ("email", "# Copyright (c) 2019 Jane Roe <jane.roe@tinyco-mail.de>\n# SPDX-License-Identifier: MIT\n",
     "jane.roe@tinyco-mail.de"),
    ("email", "Contact the maintainer at bob_smith+lists@university.edu for access.", "bob_smith+lists@university.edu"),
    ("email", "AUTHOR_EMAIL = 'dev.ops@startup.io'\n", "dev.ops@startup.io"),
    ("ip_address", "SERVER = '93.184.216.34'  # production box\n", "93.184.216.34"),
    ("ip_address", "ssh deploy@ 151.101.1.69 -p 22", "151.101.1.69"),
    ("ip_address", "upstream backend { server 172.67.12.9:8080; }", "172.67.12.9"),
    ("ip_address", "listen [2a03:2880:f12f:83:face:b00c:0:25de]:443;", "2a03:2880:f12f:83:face:b00c:0:25de"),
    ("secret", "aws_access_key_id = AKIAQWERTYUIOPASDFGH\n", "AKIAQWERTYUIOPASDFGH"),
    ("secret", "GITHUB_TOKEN=ghp_Zq8xR2vLm5Tn0Wk3Hy7Pb4Cd9Fg1Js6Ua2Ve\n", "ghp_Zq8xR2vLm5Tn0Wk3Hy7Pb4Cd9Fg1Js6Ua2Ve"),
    ("secret", "client = WebClient(token='xoxb-2419386120-5520937748291-Qm7Zt4PkWx9Lb2Hs8Yc3Rv1N')",
     "xoxb-2419386120-5520937748291-Qm7Zt4PkWx9Lb2Hs8Yc3Rv1N"),
    ("secret", "const MAPS_KEY = \"AIzaSyD4kR9mX2vQ7pL0wT5nB8cJ3hF6gZ1yE4a\";", "AIzaSyD4kR9mX2vQ7pL0wT5nB8cJ3hF6gZ1yE4a"),
    ("secret", "KEY = '''\n" + PEM + "\n'''\n", "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"),
    ("secret", "DATABASE_URL = 'postgresql://app:Tr0ub4dor9Xq@10.0.0.5:5432/prod'", "Tr0ub4dor9Xq"),
    ("secret", "stripe_api_key = \"k7Hq2Zp9Xw4Lm8Rt3Vb6Ns1Yc5Jd0Gf\"\n", "k7Hq2Zp9Xw4Lm8Rt3Vb6Ns1Yc5Jd0Gf"),
]
# (document, value, the detect-secrets plugin that finds it)
PLUGIN_ONLY = [
    ("headers = {'Authorization': 'Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjdXJhdGUtdGVzdCIsImlhdCI6MTcw"
     "MDAwMDAwMH0.AbeuEchsVEoR7TJYHSDATOCN1D61-k7U4O5Zi-czrwc'}\n",
     "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjdXJhdGUtdGVzdCIsImlhdCI6MTcwMDAwMDAwMH0.AbeuEchsVEoR7TJYHSDATOCN1D6"
     "1-k7U4O5Zi-czrwc", "JwtTokenDetector"),
    ("CONN = 'DefaultEndpointsProtocol=https;AccountName=curatetest;AccountKey=kv1NMzvKGCXvl812W7UoeJ6fVKLG86ziJYvySDv8"
     "x8AHhS+TIBXmHoJR//b/Fh/yKex25YIrBByqwt6xHJrknw==;EndpointSuffix=core.windows.net'\n",
     "kv1NMzvKGCXvl812W7UoeJ6fVKLG86ziJYvySDv8x8AHhS+TIBXmHoJR//b/Fh/yKex25YIrBByqwt6xHJrknw==",
     "AzureStorageKeyDetector"),
    ("stripe.Charge.create(amount=100, api_key=STRIPE)  # STRIPE: sk_live_J0bZB535ya5Q6wNy6HajqpFG\n",
     "sk_live_J0bZB535ya5Q6wNy6HajqpFG", "StripeDetector"),
    ("client = Client('AC441li494aj5m14bfkgndni64e4d448nj', auth_token)\n", "AC441li494aj5m14bfkgndni64e4d448nj",
     "TwilioKeyDetector"),
    ("$db_pass = \"Tr0ub4dor&3\";\n", "Tr0ub4dor&3", "KeywordDetector"),
    ("SENDGRID = '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'\n",
     "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", "SendGridDetector"),
]
POSITIVE += [("secret", doc, value) for doc, value, _ in PLUGIN_ONLY] + [
    ("secret", "db_password = \"hunter2-Lk8#q\"\n", "hunter2-Lk8#q"),  # KeywordDetector and the keyword pattern
    ("secret", "git clone https://oauth2:glpat-JNEK6hz7YLagY2jTPD1k@gitlab.com/group/repo.git\n",  # GitLab, BasicAuth
     "glpat-JNEK6hz7YLagY2jTPD1k"),                                                            # and the URL pattern
]

NEGATIVE = [
    ("email", "@property\ndef name(self):\n    return self._name\n"),
    ("email", "y = weights@inputs.T + bias\nz = x@self.weight\n"),
    ("email", "Please write to support@example.com or noreply@mail.example.org."),
    ("ip_address", "app.run(host='127.0.0.1', port=5000)\nBIND = '0.0.0.0'\n"),
    ("ip_address", "GATEWAY = '192.168.1.1'\nNET = '10.20.30.40'\nDOC = '203.0.113.7'\n"),
    ("ip_address", "__version__ = '1.2.3.4'\nVersion: 2.0.1.7\nrelease v3.1.4.1\n"),
    ("ip_address", "resolver 8.8.8.8 1.1.1.1;\nnameserver 2001:4860:4860::8888\n"),
    ("ip_address", "std::vector<int> v; ab::cd(); time 12:30:45; mac 00:1a:2b:3c:4d:5e\n"),
    ("ip_address", "semver 1.2.3 and 10.4.0-rc1; pi = 3.14159\n"),
    ("ip_address", "# the HTML 5 spec, section 12.2.4.44; RFC 7231 section 6.5.11\nmask = 'ffff:ffff:ffff::'\n"),
    ("ip_address", "group = IPv4Network('224.0.0.0/4')  # multicast\n"),
    ("secret", "commit = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4'\n"),
    ("secret", "request_id = '123e4567-e89b-12d3-a456-426614174000'\n"),
    ("secret", "token = os.environ['API_TOKEN']\npassword = input('Password: ')\n"),
    ("secret", "API_KEY = 'your-api-key-here'\nSECRET_KEY = 'changeme_in_production'\n"),
    ("secret", "db = 'postgres://user:${DB_PASSWORD}@db:5432/app'\ntokens = tokenize(text)\n"),
    ("secret", '"integrity": "sha512-Qx7YpM1dGXhVnk4r2s9TbZ0uHfLw3c8aEoJ6iKbRmNzPvQ5yXtWjC1gDlIe4AoFqUuSsw==",\n'),
    ("secret", 'files = [{file = "numpy-2.1.0.tar.gz", hash = "sha256:7dc2b6a8c3f1e9d04b5a8e6f2c1d9b3a7e4f0c8d2b6a1e5f9c3'
               'd7b0a4e8f2c6d1"}]\n'),
    ("secret", "checksum = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n"),
    ("secret", "_MODULES = {\n    'MODULE_PWD_STATE': 'yes',\n    'MODULE_SPWD_STATE': 'yes',\n}\n"),  # stdlib
    ("secret", "if password == 'secret':\n    PASSWORD = \"password\"\n"),
    ("secret", 'CONFIG = {\n    "API_KEY": "abc123",\n}\n'),  # stdlib tests
    ("secret", "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"),
]
