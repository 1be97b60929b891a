"""Creates Neutron's database schema from its models.

`neutron-db-manage upgrade heads` fails on sqlite (its migrations use ALTER
statements sqlite does not have), so hack/neutron/start.sh builds the schema
from the models that the migrations end at, then runs
`neutron-db-manage stamp heads` so that Neutron takes the schema as current.

Usage: /usr/bin/python3 create_schema.py sqlite:////path/to/neutron.sqlite
"""

import sys

import sqlalchemy
from neutron.db.migration.models import head


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: create_schema.py DATABASE_URL")
    engine = sqlalchemy.create_engine(sys.argv[1])
    head.get_metadata().create_all(engine)
    engine.dispose()


if __name__ == "__main__":
    main()
